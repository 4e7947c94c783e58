"""An installed wheel must carry every template and static folder (they sit outside the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_asset_folder_is_in_the_wheel_data_files():
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"]
    listed = {pattern.rsplit("/", 1)[0] for patterns in data_files.values() for pattern in patterns}
    folders = {
        str(path.relative_to(ROOT)) for top in ("templates", "static")
        for path in [ROOT / top, *(ROOT / top).rglob("*")] if path.is_dir()
        and any(child.is_file() for child in path.iterdir())
    }
    assert folders <= listed, f"missing from [tool.setuptools.data-files]: {folders - listed}"


def test_vendored_htmx_has_its_licence_and_a_versioned_name():
    vendor = ROOT / "static" / "vendor"
    scripts = sorted(p.name for p in vendor.glob("htmx-*.min.js"))
    assert scripts == ["htmx-2.0.11.min.js"]
    assert (vendor / "htmx-2.0.11.LICENSE").read_text().startswith(("Zero-Clause BSD", "BSD"))
    base = (ROOT / "templates" / "base.html").read_text()
    assert "vendor/htmx-2.0.11.min.js" in base and "https://" not in base
