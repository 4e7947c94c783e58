"""A live dashboard on a free port and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:0 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian Chromium; Playwright must never download a browser of its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, name: str = "ed") -> None:
    """Log in through the form as one of the test operators (tests/support/webapp.py)."""
    from tests.support.webapp import OPERATORS

    page.goto("/services")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", OPERATORS[name][0])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/services$"))
