"""Static files come from memory (no open file left behind by a dropped connection), with
the caching answers a browser relies on."""

from __future__ import annotations

from pathlib import Path

from dashboard.stores.toskastore.provider import ToskaStoreProvider
from tests.support.webapp import make_app

STATIC = Path(__file__).resolve().parents[2] / "static"


def client():
    # never contacted: static files need no store
    return make_app(ToskaStoreProvider("http://127.0.0.1:9", timeout=0.1)).test_client()


def test_static_files_are_exact_typed_and_revalidated_with_their_etag():
    web = client()
    css = web.get("/static/app.css")
    assert css.status_code == 200 and css.data == (STATIC / "app.css").read_bytes()
    assert css.mimetype == "text/css" and css.headers["ETag"]
    again = web.get("/static/app.css", headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    script = web.get("/static/app.js")
    assert script.mimetype in ("text/javascript", "application/javascript")
    icon = web.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.data == (STATIC / "favicon.svg").read_bytes()


def test_nothing_outside_the_static_folder_is_served():
    web = client()
    for path in ("/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml",
                 "/static/missing.css", "/static/vendor/../../README.md"):
        assert web.get(path).status_code == 404, path
