"""ToskaStore's wire format as the provider speaks it: key paths, queries, cursors, errors.

Nothing here sends a request; ``toskastore.py`` does, and turns every answer into
``Entry``/``KeyPage`` values or one of these ``ProviderError``s.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

from dashboard.stores import errors

#: our own cursors (legacy and index listings, paged locally) start with this
LOCAL_CURSOR_PREFIX = "k:"


def text_key(key: str, what: str = "key") -> bytes:
    """``key``'s UTF-8 bytes; ``InvalidRequest`` when it has none.

    ToskaStore keys are UTF-8 text. A key that is not (a Redis key of raw bytes arriving
    surrogate-escaped, a lone surrogate from a JSON file) cannot be sent, nor stored.
    """
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = key[error.start:error.end].encode("utf-8", "surrogatepass")
        raise errors.InvalidRequest(
            f"the {what} {key!r} is not UTF-8 text (character {error.start + 1} is "
            f"{bad!r}), and ToskaStore keys are UTF-8 text: it cannot be sent to the store",
            key=key if what == "key" else None) from None


def encode_key(key: str) -> str:
    """A key as ONE URL path segment: every reserved character percent-encoded.

    ``quote`` leaves ``.`` alone, so the keys ``.`` and ``..`` would be dot segments
    that clients and proxies collapse (``/kv/..`` becomes ``/``): encode those dots too.
    A key that is not UTF-8 text raises ``InvalidRequest`` (``text_key``).
    """
    segment = quote(text_key(key), safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return segment


def display_url(url: str) -> str:
    """The base URL without userinfo, so a password in it never reaches a message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def query(**params: Any) -> str:
    """A query string; ``None`` values are left out, booleans are ``true``/``false``."""
    pairs = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        text_key(value, f"query parameter {name!r} (a key or prefix)")
        pairs.append((name, value))
    # %20 rather than '+' for spaces: unambiguous for every server's query parser
    return urlencode(pairs, quote_via=quote, safe="")


def encode_local_cursor(last_key: str) -> str:
    raw = last_key.encode("utf-8", "surrogatepass")
    return LOCAL_CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def decode_local_cursor(cursor: str, store: str) -> str:
    if not cursor.startswith(LOCAL_CURSOR_PREFIX):
        raise errors.InvalidRequest("invalid listing cursor", store=store)
    try:
        raw = base64.urlsafe_b64decode(cursor[len(LOCAL_CURSOR_PREFIX):].encode("ascii"))
        return raw.decode("utf-8", "surrogatepass")
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise errors.InvalidRequest("invalid listing cursor", store=store) from exc


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON ``{error, reason?, ...}`` of an error answer, or ``{}``.

    A proxy in front may answer HTML: never fail while describing a failure.
    """
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(
    response: httpx.Response, method: str, *, store: str, key: str | None, write: bool,
    has_token: bool,
) -> errors.ProviderError:
    """The ``ProviderError`` for a non-2xx answer, worded for an operator."""
    status = response.status_code
    body = error_body(response)
    # the human sentence when the server gave one, else its error text
    human = str(body.get("reason") or "").strip()
    code = str(body.get("error") or "").strip()
    reason = human or code
    detail = f": {reason}" if reason else ""
    what = f"key {key!r}" if key is not None else "the request"
    if status == 401:
        if not has_token:
            message = "the store requires a token (401) and none is configured"
        elif write:
            message = "the token was refused (401) for a write: it needs write scope"
        else:
            message = "the token was refused (401)"
        # "Unauthorized" as an error text adds nothing; a reason sentence might
        return errors.Unauthorized(message + (f": {human}" if human else ""), store=store, key=key)
    if status == 403:
        if not human and (not code or "read" in code.lower() or "follower" in code.lower()):
            reason = "read-only follower"
        verb = "write" if write else "request"
        return errors.Forbidden(f"the store refused the {verb} (403): {reason}", store=store, key=key)
    if status == 404:
        if key is not None:
            return errors.NotFound(f"key {key!r} not found", store=store, key=key)
        return errors.NotFound(f"{method} {response.request.url.path} not found (404)", store=store)
    if status == 412:
        return errors.Conflict(f"{what} changed since it was read (412)", store=store, key=key)
    if status == 413:
        limit = body.get("max_bytes", body.get("max"))
        message = (f"value too large: over {limit} bytes" if is_int(limit)
                   else "value too large for the store's request size limit (413)")
        return errors.InvalidRequest(message, store=store, key=key)
    if status == 415:
        return errors.InvalidRequest(f"the store refused the body's content type (415){detail}",
                                     store=store, key=key)
    if status == 400:
        return errors.InvalidRequest(f"the store rejected {what} (400){detail}", store=store, key=key)
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        hint = f"; retry after {wait:g}s" if wait is not None else "; wait a moment and retry"
        return errors.RateLimited(f"rate limited by the store (429){hint}", store=store, key=key,
                                  retry_after=wait)
    if status in (502, 503, 504):
        return errors.Unavailable(f"store unavailable ({status}){detail}", store=store, key=key)
    if status >= 500:
        return errors.BadResponse(f"server error ({status}){detail}", store=store, key=key)
    return errors.InvalidRequest(f"the store answered {status}{detail}", store=store, key=key)
