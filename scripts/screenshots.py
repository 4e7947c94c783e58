"""Take the README's screenshots from a seeded demo: `python scripts/screenshots.py`."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.devstore import start_devstore  # noqa: E402
from dashboard.mesh.seed import seed  # noqa: E402
from dashboard.settings.load import load_settings  # noqa: E402
from dashboard.web.app import create_app  # noqa: E402
from tests.support.live import chromium, serve_app  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SCREENS = {
    "services": "/services",
    "browse": "/browse?prefix=profiles:",
    "folders": "/browse?prefix=orders:&view=folders",
    "key": "/key?key={key}",
    "edit": "/key/edit?key={key}",
    "mget": "/mget?keys=profiles:config/theme,orders:nope,{key}",
    "index": "/index",
    "index-check": "/index/check?service=profiles:",
    "search-pattern": "/browse?prefix=profiles:&match=*config*",
    "search-values": "/search?prefix=profiles:&q=dark&icase=1",
    "import": "/import",
    "live": "/live?prefix=sessions:",
}
#: the same pages as the system's dark setting shows them
DARK = {"browse-dark": "/browse?prefix=profiles:", "key-dark": "/key?key={key}"}
#: pages holding a live stream never reach "network idle": wait for the stream instead
LIVE = {"key": "key-live", "edit": "edit-live", "live": "live-connector"}


def changes(provider) -> None:
    """A few writes, a delete and an expiry under sessions: for the live feed's picture."""
    from dashboard.stores.mutations import NO_TTL, TtlChange

    for n in range(4):
        provider.put(f"sessions:session:live-{n}", f'{{"userId":"u{n}","cart":[{n}]}}', ttl=NO_TTL)
    provider.delete("sessions:session:live-1")
    provider.put("sessions:session:short", '{"userId":"u9"}', ttl=TtlChange.set(200))


def main() -> None:
    running = start_devstore(port=0)
    settings = load_settings(None, overrides={
        "Mesh": {"KeyValue": {"Provider": "ToskaStore", "ToskaStore": {"BaseUrl": running.url}}},
        "Dashboard": {"Demo": True},
    })
    app = create_app({"KV_SETTINGS": settings})
    provider = app.extensions["kv_provider"]
    seed(provider, services=6, keys_per_service=300)
    key = quote(next(provider.iter_keys("profiles:profile:")), safe="")
    OUT.mkdir(parents=True, exist_ok=True)
    with serve_app(app) as url, chromium() as browser:
        page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 800})
        page.goto("/login")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        for name, path in SCREENS.items():
            page.goto(path.format(key=key))
            if name in LIVE:
                page.wait_for_function(
                    f"() => document.querySelector('[data-testid=\"{LIVE[name]}\"], "
                    f"#{LIVE[name]}')?.dataset.state === 'open'")
            else:
                page.wait_for_load_state("networkidle")
            if name == "live":
                changes(provider)
                page.locator('[data-testid="live-event"]').nth(5).wait_for()
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(OUT / f"{name}.png")
        page.goto(f"/key?key={key}")
        page.keyboard.press("?")
        page.locator('[data-testid="shortcuts"]').wait_for()
        page.screenshot(path=str(OUT / "shortcuts.png"))
        print(OUT / "shortcuts.png")
        dark = browser.new_page(base_url=url, viewport={"width": 1280, "height": 800},
                                color_scheme="dark")
        dark.goto("/login")
        dark.fill("input[name=username]", "demo")
        dark.fill("input[name=password]", "demo")
        dark.click("button[type=submit]")
        for name, path in DARK.items():
            dark.goto(path.format(key=key))
            dark.wait_for_load_state("networkidle")
            dark.screenshot(path=str(OUT / f"{name}.png"))
            print(OUT / f"{name}.png")
    running.stop()


if __name__ == "__main__":
    main()
