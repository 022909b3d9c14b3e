"""End to end: a real player page in headless Chromium computes features that match the server's.

Real daphne (subprocess) on the test PostgreSQL database, real websocket, real TF.js build.
The page plays a short clip with a forced backend; the test waits for the client to report
that every assigned sample was acknowledged, then compares what was stored with the Keras
features of the same frames decoded by PyAV (inference.services.server_features.compute_server_features).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inference import selectors
from inference.ml.nsfw_head import WEIGHTS_FILE, load_nsfw_head
from inference.ml.quantise import dequantise
from inference.models import ClientSession, FrameFeature
from inference.services import server_features, streaming
from inference.trust.tasks import cover_video
from tests.browser import AUTOPLAY_ARGS, SCREENSHOTS, launch_chromium
from tests.inference.live_site import (
    analysis_state_is,
    ready_video,
    running_site,
)
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIN_COSINE = 0.9995


@pytest.fixture
def site(media_root: Path, tmp_path: Path) -> Iterator[str]:
    with running_site(media_root, tmp_path / "daphne.log") as base_url:
        yield base_url


def analyse_in_browser(base_url: str, video: Video, backend: str, play: bool, timeout_ms: int) -> dict:
    """Open the player with a forced backend, play (or not), and wait for the client's 'done' (or failure).

    Without playback every frame but the paused player's first comes from the hidden seeking video; with it, from
    both paths.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=AUTOPLAY_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        messages: list[str] = []
        page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))

        def analysis_state() -> dict:
            return page.evaluate("({...document.getElementById('hydra-analysis')?.dataset})")

        try:
            page.goto(f"{base_url}/v/{video.slug}/?hydra_backend={backend}")
            page.wait_for_function(
                analysis_state_is("running", "done", "error"),
                timeout=timeout_ms,
            )
            if play:
                page.evaluate("document.getElementById('player').play()")
            page.wait_for_function(
                analysis_state_is("done", "error"),
                timeout=timeout_ms,
            )
            state = analysis_state()
            state["isolated"] = page.evaluate("window.crossOriginIsolated")
            state["console"] = messages
            return state
        except PlaywrightError as error:
            raise AssertionError(
                f"{error.message}\nstate: {analysis_state()}\nconsole:\n" + "\n".join(messages)
            ) from error
        finally:
            page.screenshot(path=str(SCREENSHOTS / f"analysis-{backend}{'-played' if play else ''}.png"))
            browser.close()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize(
    ("backend", "play", "clip"),
    [
        ("wasm", True, {"seconds": 6, "fps": 24, "width": 640, "height": 360, "pattern": "erratic"}),
        ("wasm", False, {"seconds": 3, "fps": 30, "width": 320, "height": 240, "pattern": "bars"}),
        ("wasm", False, {"seconds": 2, "fps": 25, "width": 1280, "height": 720, "pattern": "calm"}),
        (
            "wasm",
            True,
            {"name": "clip.webm", "codec": "libvpx-vp9", "seconds": 3, "fps": 24, "width": 320, "height": 240},
        ),
        ("webgl", True, {"seconds": 3, "fps": 25, "width": 320, "height": 240, "pattern": "calm"}),
        ("cpu", True, {"seconds": 2, "fps": 25, "width": 192, "height": 144, "pattern": "bars"}),
    ],
)
def test_browser_features_match_the_server(site, model_version, make_video, backend, play, clip):
    video = ready_video(make_video, **clip)
    state = analyse_in_browser(site, video, backend, play, timeout_ms=300_000)
    assert state["state"] == "done", repr(state)
    assert state["backend"] == backend
    assert state["mode"] == "worker"
    assert state["isolated"] is True

    session = ClientSession.objects.get(video=video)
    assert (session.backend, session.model_version) == (backend, model_version)
    assigned = streaming.assign_sample_times(session)
    rows = list(FrameFeature.objects.filter(session=session).order_by("sample_ms"))
    assert [row.sample_ms for row in rows] == assigned
    assert all(row.backend == backend and row.inference_ms > 0 for row in rows)
    # A browser alone cannot get features accepted (docs/trust.md): the server's coverage task computes
    # the same frames, judges this browser's features against its own and accepts them.
    cover_video.delay(video.pk)
    assert selectors.coverage(video, model_version).fraction == 1.0
    assert set(FrameFeature.objects.filter(session=session).values_list("status", flat=True)) == {"accepted"}

    browser = dequantise(np.stack([np.frombuffer(bytes(row.vector), dtype=np.uint8) for row in rows]))
    server = server_features.compute_server_features(video, assigned, model_version)
    similarity = cosine(browser, server)
    print(
        f"\n{backend} {video.video_codec} original, {video.rendition_width}x{video.rendition_height}: "
        f"min cosine {similarity.min():.6f} "
        f"over {len(rows)} frames (playback {state['capturedPlayback']}, seek {state['capturedSeek']})"
    )
    if not play:  # the paused player presents its first frame (captured for free); the seeker fetches the rest
        assert state["capturedPlayback"] in ("0", "1")
        assert int(state["capturedSeek"]) + int(state["capturedPlayback"]) == len(rows) > 1
    assert similarity.min() >= MIN_COSINE, similarity

    head = load_nsfw_head(selectors.model_artefacts(model_version).directory / WEIGHTS_FILE)
    assert (head.predict(browser).argmax(axis=1) == head.predict(server).argmax(axis=1)).all()
