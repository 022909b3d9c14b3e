"""A person's path through the site in headless Chromium: log in, upload with a progress bar, watch, seek.

Screenshots of every page go to test-artifacts/screenshots/ (git-ignored) to be looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page

from tests.browser import NO_WEBSOCKETS_ON_LIVE_SERVER, PLAY_THEN_SEEK, SCREENSHOTS
from videos.models import Video
from videos.synthetic import write_audio_only

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Slow the upload down so that the page reports progress several times before it completes.
UPLOAD_BYTES_PER_SECOND = 1_000_000

# Reports every value the progress bar shows, from the page itself, to the test (it outlives the page).
WATCH_PROGRESS = """() => {
  const track = document.querySelector('#upload-progress [role="progressbar"]');
  new MutationObserver(() => window.reportProgress(Number(track.getAttribute('aria-valuenow'))))
    .observe(track, {attributes: true, attributeFilter: ['aria-valuenow']});
}"""


@pytest.fixture
def console_allowed() -> list[str]:
    return [
        NO_WEBSOCKETS_ON_LIVE_SERVER,
        r"status of 400 \(Bad Request\) \(.*/upload/\)",  # the audio-only file this test uploads on purpose
    ]


@pytest.fixture
def browser_page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_log_in_upload_watch_and_seek(
    live_server, transactional_db, media_root, make_video, ready_video, browser_page: Page, tmp_path: Path
):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop lives in this thread too
    page = browser_page
    user = User.objects.create_user("alice", password="a-long-test-password")
    for title, pattern in (("Morning light", "calm"), ("Test pattern", "bars")):
        ready_video(user, title=title, pattern=pattern, seconds=3, fps=12, width=480, height=270)

    page.goto(f"{live_server.url}/accounts/login/?next=/upload/")
    screenshot(page, "login")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url("**/upload/")
    clip_folder = tmp_path / "browser-files"

    song = write_audio_only(clip_folder / "song.mp4", seconds=2)  # named like a video, but only sound
    page.set_input_files("#id_file", str(song))
    page.click("#upload-submit")
    error = page.locator("#file-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "This file has sound but no picture. Upload a video file."
    assert page.locator("#upload-submit").is_enabled()
    screenshot(page, "upload-error")

    clip = make_video("beach day.mp4", seconds=3, fps=24, width=320, height=240, pattern="noise", audio=True)
    assert clip.stat().st_size > 2 * UPLOAD_BYTES_PER_SECOND  # a few seconds of upload at the throttled speed
    page.set_input_files("#id_file", str(clip))
    page.fill("#id_title", "Beach day")
    page.fill("#id_description", "Waves, noise and a 440 Hz tone.")
    screenshot(page, "upload")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": UPLOAD_BYTES_PER_SECOND},
    )
    progress: list[int] = []
    page.expose_function("reportProgress", lambda value: progress.append(value))
    page.evaluate(WATCH_PROGRESS)
    page.click("#upload-submit")
    page.wait_for_function(
        "() => { const v = Number(document.querySelector('[role=progressbar]').getAttribute('aria-valuenow'));"
        " return v > 0 && v < 100; }"
    )
    screenshot(page, "upload-progress")
    page.wait_for_url("**/my-videos/", timeout=120_000)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                   "uploadThroughput": -1})  # fmt: skip
    distinct = sorted(set(progress))
    assert len([value for value in distinct if 0 < value < 100]) > 1, progress
    assert progress == sorted(progress), "the bar only moves forward"

    video = Video.objects.get(title="Beach day")
    row = page.locator(f'.video-row[data-slug="{video.slug}"]')
    # Tasks run in-process here, so the video may already be ready; otherwise the page refreshes itself.
    row.locator("[data-status-badge]", has_text="Published").wait_for(timeout=120_000)
    screenshot(page, "my-videos")

    page.goto(live_server.url + "/")
    assert page.locator(".card").count() == 3
    page.wait_for_function("() => [...document.querySelectorAll('.card img')].every((img) => img.naturalWidth > 0)")
    screenshot(page, "home")

    page.click(f'.card a[href="/v/{video.slug}/"] >> nth=0')
    page.wait_for_url(f"**/v/{video.slug}/")
    page.wait_for_function("() => document.querySelector('video#player').readyState >= 1")
    result = page.evaluate(PLAY_THEN_SEEK, 1.5)
    assert result["playedTo"] > 0.5
    assert result["seekedTo"] == pytest.approx(1.5, abs=0.05)
    assert result["duration"] == pytest.approx(3.0, abs=0.1)
    assert (result["width"], result["height"]) == (320, 240)
    assert result["isolated"] is True, "COOP/COEP make the player page cross-origin isolated"
    screenshot(page, "player")
