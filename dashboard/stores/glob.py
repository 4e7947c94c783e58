"""Redis glob patterns (``SCAN MATCH``), matched the same way outside Redis.

A pattern searches the rest of a key after its service prefix. Redis applies it itself
(``SCAN MATCH`` with the glob-escaped prefix in front); every other store lists keys and
the dashboard filters them with ``compile_glob``, which follows Redis's
``stringmatchlen``: ``*`` any run (also empty), ``?`` one character, ``[abc]``, ``[a-z]``
(a reversed range counts as its reverse), ``[^..]`` (and ``[!..]``) negated, ``\\x`` the
character ``x`` itself, inside a class too; a ``[`` never closed takes the rest of the
pattern as its class, as Redis does. Matching is case-sensitive and covers the whole rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: the characters that make a pattern more than a literal
SPECIAL = frozenset("*?[\\")


def is_literal(pattern: str) -> bool:
    """No wildcard, class or escape: the pattern matches exactly one rest of key."""
    return not any(char in SPECIAL for char in pattern)


def glob_to_regex(pattern: str) -> str:
    """The Python regular expression matching exactly what Redis's glob ``pattern`` does."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1  # a run of stars is one star (and never backtracks twice)
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            i, klass = _class(pattern, i + 1)
            out.append(klass)
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class(pattern: str, i: int) -> tuple[int, str]:
    """The class starting at ``pattern[i]`` (after ``[``): (index after ``]``, regex)."""
    n = len(pattern)
    negate = i < n and pattern[i] in "^!"
    if negate:
        i += 1
    singles: list[str] = []
    ranges: list[tuple[str, str]] = []
    while i < n and pattern[i] != "]":
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            i += 1
            char = pattern[i]
        if i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            end = pattern[i + 2]
            i += 2
            if end == "\\" and i + 1 < n:
                i += 1
                end = pattern[i]
            low, high = sorted((char, end))
            ranges.append((low, high))
        else:
            singles.append(char)
        i += 1
    i += 1  # past "]" (or past the end: an unclosed class takes the rest, as in Redis)
    parts = [re.escape(c) for c in singles] + [f"{re.escape(a)}-{re.escape(b)}" for a, b in ranges]
    if not parts:
        # "[]" matches nothing, "[^]" any one character
        return i, "." if negate else "(?!)"
    return i, ("[^" if negate else "[") + "".join(parts) + "]"


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate: does the whole ``text`` match Redis's glob ``pattern``?

    With one ``*`` at most, a regular expression (fast, and linear for such a pattern).
    With more, a backtracking regex can take exponential time (``*a*a*a*a*b`` against a
    long run of ``a``: the denial of service Redis itself fixed in 7.0.10, CVE-2022-36021),
    so the match returns to the last ``*`` only: at most len(text) × len(pattern) steps.
    """
    tokens = _tokens(pattern)
    if sum(1 for token in tokens if token is None) <= 1:
        compiled = re.compile(glob_to_regex(pattern), re.DOTALL)
        return lambda text: compiled.fullmatch(text) is not None
    return lambda text: _match_tokens(tokens, text)


def _tokens(pattern: str) -> list[re.Pattern[str] | None]:
    """The pattern as one token per text character it matches; None for a run of ``*``."""
    tokens: list[re.Pattern[str] | None] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "*":
            while i < n and pattern[i] == "*":
                i += 1
            tokens.append(None)
            continue
        start = i
        if pattern[i] == "[":
            i, _ = _class(pattern, i + 1)
        elif pattern[i] == "\\" and i + 1 < n:
            i += 2
        else:
            i += 1
        tokens.append(re.compile(glob_to_regex(pattern[start:i]), re.DOTALL))
    return tokens


def _match_tokens(tokens: list[re.Pattern[str] | None], text: str) -> bool:
    """Whole-text match, resuming after the last ``*`` on a mismatch (no deeper backtracking:
    a later ``*`` can absorb whatever an earlier one would have)."""
    t = p = 0
    star, mark = -1, 0
    while t < len(text):
        token = tokens[p] if p < len(tokens) else False
        if token is None:
            star, mark = p, t
            p += 1
        elif token is not False and token.fullmatch(text, t, t + 1):
            t += 1
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    while p < len(tokens) and tokens[p] is None:
        p += 1
    return p == len(tokens)
