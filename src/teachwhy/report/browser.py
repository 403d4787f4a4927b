"""A headless Chromium for checking and photographing the report (Debian's ``chromium`` package).

Only used to verify the report renders and to save a screenshot; building the report never needs a browser.
The browser runs with networking features off and a throw-away profile, so nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from teachwhy.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    """The path of an installed Chromium, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _run(page: Path, extra: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    browser = find_browser()
    if browser is None:
        raise UserError("no Chromium found for the screenshot (on Debian/Ubuntu: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="teachwhy-chromium-") as profile:
        command = [browser, *_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"Chromium did not finish within {timeout:.0f}s", file=page) from None


def dump_dom(page: str | Path, *, timeout: float = 120) -> str:
    """The page's DOM after Chromium has loaded and rendered it."""
    result = _run(Path(page), ["--dump-dom"], timeout=timeout)
    if result.returncode != 0 or not result.stdout.strip():
        raise UserError(f"Chromium could not render the page: {result.stderr.strip()[-300:]}", file=page)
    return result.stdout


def screenshot(
    page: str | Path, png: str | Path, *, width: int = 1280, height: int = 2000, timeout: float = 120
) -> Path:
    """Save a PNG of ``page`` rendered at ``width`` × ``height`` CSS pixels."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    result = _run(Path(page), [f"--screenshot={png}", f"--window-size={width},{height}"], timeout=timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise UserError(f"Chromium wrote no screenshot: {result.stderr.strip()[-300:]}", file=png)
    return png
