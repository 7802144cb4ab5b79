"""What the browser tests share: Debian's Chromium and its flags, the screen sizes, and the screenshots that the
README links to (docs/console/). The ``browser`` and ``served`` fixtures are in conftest.py."""

from __future__ import annotations

import shutil

from services.platform.settings import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO_ROOT / "docs" / "console"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# The flags Chromium needs in a sandbox without a network: no background calls home, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


async def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def fits_the_screen(page) -> bool:
    """Usable at the viewport's width: nothing scrolls sideways."""
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
