"""Request parameters: decoding them exactly, refusing what the store cannot hold, and
carrying exact text (keys, prefixes) through HTML forms.

Every query string and url-encoded form is decoded here (``decode_pairs``, used by the
app's request class): bytes that are not UTF-8 come through surrogate-escaped, so a Redis
key of any bytes round-trips. A store whose keys are text (ToskaStore) cannot hold such a
value, so reading a parameter that carries one answers 400 naming it (``refuse_undecodable``,
run by the request class on the whole query and form, for every route): the request never
reaches a view, let alone the store, with text it cannot send.

Browsers normalise line breaks in submitted form fields to CRLF, so a key holding a line
feed would come back as another key ("deleted meanwhile"). Such fields travel base64url
encoded in a ``<name>_b64`` twin, which survives form encoding byte for byte; the plain
field stays for people and scripts that post by hand.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from flask import current_app, request
from werkzeug.exceptions import BadRequest
from werkzeug.formparser import FormDataParser

from dashboard.mesh.text import has_surrogates
from dashboard.stores.errors import ProviderError

#: parameters the dashboard only hands back to the browser byte for byte (the page to
#: return to after logging in): never sent to the store, so any bytes are fine
RAW_PARAMETERS = frozenset({"next"})


def decode_pairs(raw: bytes) -> list[tuple[str, str]]:
    """``a=1&b=%FF`` as (name, value) pairs, in order, blank values kept.

    ``+`` is a space; percent escapes and raw bytes that are not UTF-8 come through
    surrogate-escaped (``%FF`` is ``"\\udcff"``), never replaced or left encoded.
    """
    pairs = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "surrogateescape")


def store_holds_bytes() -> bool:
    """Whether the app's store keeps keys as bytes (Redis), not only UTF-8 text."""
    try:
        return bool(getattr(current_app.extensions["kv_provider"].capabilities(),
                            "binary_keys", False))
    except ProviderError:
        return False  # a store that cannot say so cannot take such a key either


def _shown(text: str) -> str:
    """A value for a message: the bytes that are not UTF-8 as ``\\xff`` escapes."""
    data = text.encode("utf-8", "surrogateescape" if not _lone(text) else "surrogatepass")
    shown = repr(data)[2:-1]
    return shown if len(shown) <= 80 else shown[:77] + "..."


_LONE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _lone(text: str) -> bool:
    return _LONE.search(text) is not None


def refuse_undecodable(pairs: Iterable[tuple[str, str]], where: str = "query") -> None:
    """400 naming the first parameter the store cannot take: a name that is not UTF-8
    text, or a value that is not UTF-8 text on a store whose keys are text (or one with
    a lone surrogate, which no store holds). ``RAW_PARAMETERS`` pass as they are."""
    holds_bytes: bool | None = None
    for name, value in pairs:
        if has_surrogates(name):
            raise BadRequest(
                f"A {where} parameter name is not UTF-8 text ({_shown(name)}); the dashboard "
                "knows no such parameter. Nothing was read or changed.")
        if name in RAW_PARAMETERS or not has_surrogates(value):
            continue
        if holds_bytes is None:
            holds_bytes = store_holds_bytes()
        if _lone(value):
            reason = "it holds a lone UTF-16 surrogate, which no store can hold"
        elif not holds_bytes:
            reason = ("it holds bytes that are not UTF-8 text, and this store's keys are "
                      "UTF-8 text")
        else:
            continue
        raise BadRequest(
            f"The {where} parameter {name!r} cannot be used: {reason} "
            f"({_shown(value)}). Nothing was read or changed.")


class FormParser(FormDataParser):
    """werkzeug's form parser, but url-encoded bodies decode as query strings do
    (``decode_pairs``): werkzeug would keep ``%FF`` as those three characters."""

    def _parse_urlencoded(self, stream, mimetype, content_length, options):  # type: ignore[override]
        return stream, self.cls(decode_pairs(stream.read())), self.cls()


def encode(text: str) -> str:
    """``text`` as base64url of its UTF-8 bytes (non-UTF-8 Redis keys via surrogateescape)."""
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def field(name: str, default: str = "") -> str:
    """The submitted value of ``name``: its ``_b64`` twin when present, else the plain field."""
    encoded = request.values.get(f"{name}_b64")
    if encoded is None:
        return request.values.get(name, default)
    try:
        text = base64.urlsafe_b64decode(encoded.encode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest(f"The form field {name!r} is damaged; reload the page and retry.") \
            from None
    refuse_undecodable([(name, text)], "form")
    return text
