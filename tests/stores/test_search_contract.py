"""Search, on every backend: keys by Redis glob (``scan_matching``), values by text or regex.

Both are bounded per call and resumable: following ``next_cursor`` to the end finds every
match exactly once (a SCAN may repeat a key, so Redis pages are compared as sets), and
each step says how many keys it examined so far.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.stores import search
from dashboard.stores.errors import InvalidRequest
from dashboard.stores.glob import compile_glob, glob_to_regex, is_literal


@pytest.mark.parametrize(("pattern", "yes", "no"), [
    ("*", ["", "a", "a:b/c"], []),
    ("*cart", ["cart", "sessions:42:cart"], ["carts", "cart:1"]),
    ("item:?", ["item:1", "item:x"], ["item:", "item:10"]),
    ("item:[0-2]", ["item:0", "item:2"], ["item:3", "item:a"]),
    ("item:[2-0]", ["item:1"], ["item:3"]),  # a reversed range, as Redis reads it
    ("[^a]*", ["b", "ba"], ["a", "ab", ""]),
    ("[!a]*", ["b"], ["a"]),
    ("a\\*b", ["a*b"], ["axb", "ab"]),
    ("a[\\]]b", ["a]b"], ["a\\b"]),
    ("a[*]", ["a*"], ["ab"]),
    ("x[ab", ["xa", "xb"], ["x[ab", "xc"]),  # unclosed: the rest is the class
    ("a.b(c)", ["a.b(c)"], ["aXb(c)"]),  # regex characters are plain text in a glob
    ("é?", ["éa"], ["e", "é"]),
    ("line*", ["line\nbreak"], []),
])
def test_globs_match_as_redis_does(pattern, yes, no):
    matches = compile_glob(pattern)
    for text in yes:
        assert matches(text), (pattern, text, glob_to_regex(pattern))
    for text in no:
        assert not matches(text), (pattern, text, glob_to_regex(pattern))


def test_a_pattern_without_wildcards_is_literal():
    assert is_literal("cart") and not is_literal("*cart") and not is_literal("a\\b")


def _match_all(provider, prefix, pattern, *, limit=100, budget=20_000):
    """Follow the continue cursor to the end: (keys found, steps, last page)."""
    found: list[str] = []
    cursor = None
    steps = 0
    while True:
        page = provider.scan_matching(prefix, pattern, cursor=cursor, limit=limit,
                                      budget=budget, preview_bytes=4096)
        steps += 1
        assert steps < 500, "the search never ends"
        assert page.scanned >= 0
        found.extend(entry.key for entry in page.entries)
        if page.next_cursor is None:
            return found, steps, page
        cursor = page.next_cursor


def _check_found(provider, found, expected):
    if provider.capabilities().listing == "scan":
        assert set(found) == set(expected)  # SCAN may repeat a key across steps
    else:
        assert found == sorted(expected)


def test_scan_matching_finds_exactly_the_matching_keys(backend, provider, prefix):
    keys = {prefix + "sessions:42:cart": '{"items":[1]}', prefix + "sessions:43:cart": "2",
            prefix + "sessions:43:carts": "3", prefix + "cart": "4", prefix + "profile:cart:x": "5"}
    other = prefix[:-1] + "other:" + "sessions:1:cart"
    backend.seed({**keys, other: "6"})
    found, _, last = _match_all(provider, prefix, "*:cart")
    _check_found(provider, found, [prefix + "sessions:42:cart", prefix + "sessions:43:cart"])
    assert last.complete and last.total is not None and last.scanned == last.total
    entries = {e.key: e for e in provider.scan_matching(prefix, "sessions:4[2]:cart").entries}
    assert list(entries) == [prefix + "sessions:42:cart"]
    assert entries[prefix + "sessions:42:cart"].value == '{"items":[1]}'  # rows show values
    found, _, _ = _match_all(provider, prefix, "cart")  # no wildcard: the whole rest
    assert found == [prefix + "cart"]


def test_a_pattern_with_several_stars_finds_the_same_keys(backend, provider, prefix):
    """Several ``*``: Redis is asked for the prefix only and the dashboard matches the rest
    (older Redis backtracks such patterns exponentially); the answer is the same."""
    keys = [prefix + rest for rest in ("a1b2", "ab", "xaxb", "ba", "a:b:c", "b")]
    backend.seed({key: "1" for key in keys})
    backend.seed({prefix[:-1] + "other:ab": "1"})
    found, _, last = _match_all(provider, prefix, "*a*b*")
    _check_found(provider, found, [prefix + r for r in ("a1b2", "ab", "xaxb", "a:b:c")])
    assert last.complete
    found, _, _ = _match_all(provider, prefix, "*a*b")
    _check_found(provider, found, [prefix + r for r in ("ab", "xaxb")])


def test_scan_matching_treats_the_prefix_literally(backend, provider, prefix):
    odd = prefix + "a*[b]?\\:"
    backend.seed({odd + "x": "1", prefix + "aZ[b]?\\:x": "2", prefix + "a*b]?\\:x": "3"})
    found, _, _ = _match_all(provider, odd, "*")
    assert found == [odd + "x"]


def test_a_bounded_search_continues_to_every_match_once(backend, provider, prefix):
    items = {f"{prefix}item:{i:04d}": str(i) for i in range(600)}
    backend.seed(items)
    expected = [k for k in items if k.endswith("7")]
    found, steps, last = _match_all(provider, prefix, "item:*7", limit=7, budget=50)
    _check_found(provider, found, expected)
    if provider.capabilities().listing != "scan":
        # 600 keys at 50 a step, or 7 hits a step: never one step for everything
        assert steps >= 12
        assert last.scanned == last.total == 600
    else:
        assert steps >= 1 and last.total >= 600


def test_a_step_reports_how_far_it_got(backend, provider, prefix):
    backend.seed({f"{prefix}k:{i:04d}": "v" for i in range(300)})
    page = provider.scan_matching(prefix, "nothing-*", limit=10, budget=100)
    assert page.entries == []
    if provider.capabilities().listing == "scan":
        assert page.total is not None and page.total >= 300  # the database SCAN walks
    else:
        assert page.next_cursor is not None and page.scanned == 100
        if provider.capabilities().listing in ("legacy", "index"):
            assert page.total == 300 and page.total_exact
        following = provider.scan_matching(prefix, "nothing-*", cursor=page.next_cursor,
                                           limit=10, budget=100)
        assert following.scanned == 200


def test_a_cursor_of_another_search_is_refused(backend, provider, prefix):
    backend.seed({f"{prefix}k:{i:04d}": "v" for i in range(30)})
    page = provider.scan_matching(prefix, "*", limit=2, budget=2)
    if page.next_cursor is None:
        pytest.skip("one SCAN step held every key: no cursor to misuse")
    with pytest.raises(InvalidRequest):
        provider.scan_matching(prefix, "k:*", cursor=page.next_cursor)
    with pytest.raises(InvalidRequest):
        provider.scan_matching(prefix, "*", cursor="not-a-cursor")


def _values_all(provider, prefix, query, **options):
    hits = []
    cursor = None
    for _ in range(500):
        page = provider.search_values(prefix, query, cursor=cursor, **options)
        hits.extend(page.hits)
        if page.next_cursor is None:
            return hits, page
        cursor = page.next_cursor
    raise AssertionError("the value search never ends")


def test_search_values_by_text_case_and_regex(backend, provider, prefix):
    backend.seed({prefix + "a": '{"displayName":"Zoë Cart"}', prefix + "b": "a shopping CART",
                  prefix + "c": "nothing here", prefix + "d": "order 1234-55"})
    hits, last = _values_all(provider, prefix, "Cart")
    assert [h.entry.key for h in hits] == [prefix + "a"]
    assert (hits[0].before, hits[0].match, hits[0].after) == ('{"displayName":"Zoë ', "Cart", '"}')
    assert last.complete and last.scanned == 4
    hits, _ = _values_all(provider, prefix, "cart", icase=True)
    assert sorted(h.entry.key for h in hits) == [prefix + "a", prefix + "b"]
    hits, _ = _values_all(provider, prefix, r"\d{4}-\d+", regex=True)
    assert [(h.entry.key, h.match) for h in hits] == [(prefix + "d", "1234-55")]
    hits, _ = _values_all(provider, prefix, "1234-5.", regex=False)  # text: '.' is a dot
    assert hits == []


def test_search_values_is_bounded_and_resumable(backend, provider, prefix):
    backend.seed({f"{prefix}v:{i:03d}": ("needle" if i % 10 == 3 else "hay") for i in range(120)})
    hits, last = _values_all(provider, prefix, "needle", limit=4, budget=25)
    assert sorted(h.entry.key for h in hits) == [f"{prefix}v:{i:03d}" for i in range(3, 120, 10)]
    if provider.capabilities().ordered:
        assert [h.entry.key for h in hits] == sorted(h.entry.key for h in hits)
    assert last.scanned == 120 and last.bytes_read > 0
    first = provider.search_values(prefix, "needle", limit=100, budget=25)
    assert first.next_cursor is not None and first.scanned <= 120


def test_search_values_refuses_bad_and_runaway_patterns(backend, provider, prefix):
    backend.seed({prefix + "evil": "a" * 40 + "!"})
    with pytest.raises(search.BadPattern, match="not a valid regular expression"):
        provider.search_values(prefix, "(unclosed", regex=True)
    with pytest.raises(search.BadPattern, match="stopped"):
        provider.search_values(prefix, "(a|aa)*$", regex=True)


def test_the_regex_timeout_stops_a_catastrophic_pattern_quickly():
    import time

    find = search.value_matcher("(a|aa)+!b", regex=True, icase=False)
    started = time.monotonic()
    with pytest.raises(search.BadPattern):
        find("a" * 60 + "!")
    assert time.monotonic() - started < 5 * search.REGEX_TIMEOUT + 1
    assert search.value_matcher("A.C", regex=False, icase=True)("xa.cx") == (1, 4)
    assert search.value_matcher("A.C", regex=False, icase=True)("xabcx") is None


@settings(max_examples=400, deadline=None)
@given(pattern=st.text(alphabet="ab*?[]^!-\\\\", max_size=10),
       text=st.text(alphabet="ab-]^\\\\", max_size=12))
def test_many_star_patterns_match_as_the_regular_expression_does(pattern, text):
    """The star-resuming matcher (patterns with several ``*``) agrees with the plain regex."""
    expected = re.fullmatch(glob_to_regex(pattern), text, re.DOTALL) is not None
    assert compile_glob(pattern)(text) == expected


def test_a_pattern_built_to_backtrack_is_answered_without_backtracking():
    """``*a*a*...*b`` against a long run of ``a``: exponential for a backtracking regex
    (Redis's CVE-2022-36021); the matcher resumes after the last ``*`` only."""
    matches = compile_glob("*a*a*a*a*a*a*a*a*a*a*b")
    assert matches("a" * 3000) is False
    assert matches("a" * 3000 + "b") is True
