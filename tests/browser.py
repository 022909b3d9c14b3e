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
# Django's live server speaks WSGI only: the player page's analysis websocket gets 404 there (tests of the
# analysis itself run daphne, tests.live_site).
NO_WEBSOCKETS_ON_LIVE_SERVER = r"WebSocket connection to '.*/ws/analysis/.*' failed: .*404"
# For pages that play video without a click (the analysis runs while the player plays).
AUTOPLAY_ARGS = ("--autoplay-policy=no-user-gesture-required",)

# Play until half a second has played, pause, then seek to ``seekTo`` seconds (from the end when negative).
PLAY_THEN_SEEK = """async (seekTo) => {
  const video = document.querySelector('video#player');
  video.muted = true;
  await video.play();
  await new Promise((resolve) => {
    const check = () => (video.currentTime > 0.5 ? resolve() : requestAnimationFrame(check));
    check();
  });
  const playedTo = video.currentTime;
  video.pause();
  const seeked = new Promise((resolve) => video.addEventListener('seeked', resolve, {once: true}));
  video.currentTime = seekTo < 0 ? video.duration + seekTo : seekTo;
  await seeked;
  return {playedTo, seekedTo: video.currentTime, duration: video.duration,
          width: video.videoWidth, height: video.videoHeight, isolated: window.crossOriginIsolated};
}"""


def watch_console_errors(browser: Browser) -> list[str]:
    """Collect every console error and uncaught exception of the pages of contexts opened from now on."""
    errors: list[str] = []
    new_context = browser.new_context

    def on_console(message) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url')})")

    def watched_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        context.on("console", on_console)
        context.on("weberror", lambda web_error: errors.append(f"uncaught: {web_error.error}"))
        return context

    browser.new_context = watched_context
    return errors


def launch_chromium(playwright: Playwright, *, extra_args: Iterable[str] = (), **kwargs) -> Browser:
    """``playwright.chromium.launch`` with Hydra's executable and flags (plus ``extra_args``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=[*CHROMIUM_ARGS, *extra_args], **kwargs)
