"""One partial, two uses: an htmx request gets the fragment, a plain request the page."""

from __future__ import annotations

from typing import Any

from flask import render_template, request


def is_htmx() -> bool:
    """A real htmx swap (boosted navigations want the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page_template: str, partial_template: str, **context: Any):
    """Render the partial for an htmx request, else the page (which includes the partial)."""
    body = render_template(partial_template if is_htmx() else page_template, **context)
    return body, 200, {"Vary": "HX-Request"}
