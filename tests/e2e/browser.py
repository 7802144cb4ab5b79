"""What the browser tests share: Debian's Chromium and its flags, the screen sizes, and the screenshots that the
README links to (docs/console/). The ``browser`` and ``served`` fixtures are in conftest.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from services.platform.settings import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO_ROOT / "docs" / "console"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# The flags Chromium needs in a sandbox without a network: no background calls home, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


async def screenshot(page, name: str) -> None:
    """Every page a browser test shows: checked by axe-core (0 serious or critical WCAG 2.1 A/AA findings), then
    photographed for the README."""
    findings = await serious_findings(page)
    assert findings == [], f"{name}: {findings}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


AXE_CORE = "4.14.1"  # Deque's axe-core, from npm: the checker accessibility audits use, not one of ours
AXE_CACHE = Path.home() / ".cache" / "handoff" / f"axe-core-{AXE_CORE}"


def axe_script() -> Path:
    """axe-core's browser build, installed from npm into the cache the first time (the tests' own setup)."""
    script = AXE_CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed once, to install axe-core for the accessibility checks (apt-get install npm)"
        AXE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(AXE_CACHE), "--no-save", "--no-audit", "--no-fund",
                        f"axe-core@{AXE_CORE}"], check=True, capture_output=True, timeout=300)
    return script


async def serious_findings(page) -> list[tuple[str, str, int]]:
    """axe-core's serious and critical WCAG 2.1 A/AA findings on the page: (rule, impact, elements)."""
    await page.add_script_tag(path=str(axe_script()))
    result = await page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}))"
        ".violations.map(v => [v.id, v.impact, v.nodes.length])")
    return [tuple(v) for v in result if v[1] in ("serious", "critical")]


async def fits_the_screen(page) -> bool:
    """Usable at the viewport's width: nothing scrolls sideways."""
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
