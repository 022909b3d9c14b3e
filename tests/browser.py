"""Headless Chromium for the browser tests and benchmarks: one launch recipe.

Debian's chromium with the flags DEVELOPERS.md fixes (no sandbox in the container, no GPU, nothing
fetched from the network at run time). Screenshots go to ``test-artifacts/screenshots`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# For pages that play video without a click (the analysis runs while the player plays).
AUTOPLAY_ARGS = ("--autoplay-policy=no-user-gesture-required",)


def launch_chromium(playwright: Playwright, *, extra_args: Iterable[str] = (), **kwargs) -> Browser:
    """``playwright.chromium.launch`` with Hydra's executable and flags (plus ``extra_args``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=[*CHROMIUM_ARGS, *extra_args], **kwargs)
