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
def checked_page(browser, request, tmp_path, **options) -> Iterator[object]:
    """A page in a fresh browser context (``options`` as for ``new_context``): the failing
    screen is saved under the test's temp dir, and a CSP report fails the test."""
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        (tmp_path / "failure.html").write_text(page.content())
        print(f"screenshot of the failing screen: {tmp_path / 'failure.png'}")
    context.close()
    assert not refused, f"the page broke its Content-Security-Policy: {refused}"


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


# --- streams over HTTP, each read with a deadline (a test fails, it never hangs) -----------

#: the longest a test waits for what it expects from a stream (keepalives come every 2 s)
STREAM_DEADLINE_S = 15.0
COOKIE = "kvdash_session"


def login_http(client, name: str = "ed") -> None:
    """Log ``client`` (an ``httpx.Client`` on a served app) in through the form."""
    from tests.support.webapp import OPERATORS

    page = client.get("/login").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": name, "password": OPERATORS[name][0],
                                         "csrf_token": token})
    assert answer.status_code == 302, answer.text


def logout_http(client) -> None:
    """Log out through the form, as another tab of the same browser would."""
    page = client.get("/services")
    assert page.status_code == 200, "the other tab is not logged in"
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 302 and "/login" in answer.headers["location"], answer.text


def same_browser(url: str, client, timeout: float = 10):
    """Another ``httpx.Client`` holding ``client``'s session cookie (another tab)."""
    import httpx

    return httpx.Client(base_url=url, timeout=timeout,
                        cookies={COOKIE: client.cookies.get(COOKIE)})


def read_until(lines, stop, *, never=None, timeout_s: float = STREAM_DEADLINE_S) -> list[str]:
    """Lines of an open stream up to the first for which ``stop(line)`` holds (included).

    Fails at once on a line for which ``never(line)`` holds, when the stream ends first, and
    when ``timeout_s`` passes (the client's read timeout bounds each single read).
    """
    import time

    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    for line in lines:
        seen.append(line)
        assert never is None or not never(line), f"unexpected line {line!r} after {seen[:-1]}"
        if stop(line):
            return seen
        assert time.monotonic() < deadline, f"timed out ({timeout_s} s) on a stream: {seen}"
    raise AssertionError(f"the stream ended without the line awaited: {seen}")
