"""Carrying exact text (keys, prefixes) through HTML forms.

Browsers normalise line breaks in submitted form fields to CRLF, so a key holding a line
feed would come back as another key ("deleted meanwhile"). Such fields travel base64url
encoded in a ``<name>_b64`` twin, which survives form encoding byte for byte; the plain
field stays for people and scripts that post by hand.
"""

from __future__ import annotations

import base64
import binascii

from flask import abort, request


def encode(text: str) -> str:
    """``text`` as base64url of its UTF-8 bytes (non-UTF-8 Redis keys via surrogateescape)."""
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def field(name: str, default: str = "") -> str:
    """The submitted value of ``name``: its ``_b64`` twin when present, else the plain field."""
    encoded = request.values.get(f"{name}_b64")
    if encoded is None:
        return request.values.get(name, default)
    try:
        return base64.urlsafe_b64decode(encoded.encode("ascii")).decode("utf-8", "surrogateescape")
    except (ValueError, binascii.Error, UnicodeError):
        abort(400, description=f"The form field {name!r} is damaged; reload the page and retry.")
