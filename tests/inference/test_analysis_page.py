"""How the player page's analysis client behaves for a viewer: opt-out, a tampered model, a lost connection.

Real daphne on the test database and headless Chromium, as in test_browser_parity.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.db import connections

from inference import selectors
from inference.ml.quantise import dequantise
from inference.models import ClientSession, FrameFeature
from inference.services import server_features, streaming
from tests.browser import AUTOPLAY_ARGS, SCREENSHOTS, launch_chromium
from tests.inference.live_site import (
    analysis_state_is,
    ready_video,
    running_site,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
ANALYSIS_SOCKET = re.compile(r".*/ws/analysis/.*")


@pytest.fixture
def site(media_root: Path, tmp_path: Path, model_version) -> Iterator[str]:
    with running_site(media_root, tmp_path / "daphne.log") as base_url:
        yield base_url


@pytest.fixture
def page(monkeypatch):
    """A Chromium page. Playwright's sync API keeps an event loop in this thread, so Django's guard against
    blocking ORM calls from async code must be lifted for the test's own (synchronous) queries."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=AUTOPLAY_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 820})
        finally:
            browser.close()
            # Queries made while Playwright's loop runs use a connection of their own: close it here.
            connections.close_all()


def test_opting_out_stops_at_once_and_is_remembered(site, page, make_video):
    video = ready_video(make_video, seconds=30, fps=10, width=160, height=120, pattern="calm")
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket))
    page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")
    page.wait_for_function(analysis_state_is("running"), timeout=120_000)
    assert page.get_by_text("This page helps analyse this video.").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "analysis-notice.png"))

    page.get_by_role("button", name="Turn off").click()
    if not sockets[0].is_closed():
        sockets[0].wait_for_event("close")
    assert page.evaluate("document.getElementById('hydra-analysis').dataset.state") == "off"
    assert page.evaluate("localStorage.getItem('hydra.analysis.optOut')") == "1"
    assert page.evaluate("document.querySelectorAll('video').length") == 1  # the hidden seeker is gone
    stored_when_off = FrameFeature.objects.filter(video=video).count()

    page.reload()
    page.wait_for_function(analysis_state_is("off"))
    assert page.get_by_text("Analysis is off in this browser.").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "analysis-off.png"))
    assert len(sockets) == 1, "an opted-out page must not connect"
    assert ClientSession.objects.filter(video=video).count() == 1
    assert FrameFeature.objects.filter(video=video).count() == stored_when_off

    page.get_by_role("button", name="Turn on").click()
    page.wait_for_function(analysis_state_is("running"), timeout=120_000)
    assert len(sockets) == 2
    assert page.evaluate("localStorage.getItem('hydra.analysis.optOut')") is None


def test_a_model_that_does_not_match_its_hash_is_never_run(site, page, make_video):
    video = ready_video(make_video, seconds=2, fps=10, width=160, height=120)

    def tamper(route):
        response = route.fetch()
        route.fulfill(response=response, body=response.body() + b" ")

    page.route("**/models/*/model.json", tamper)
    page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")
    page.wait_for_function(analysis_state_is("error", "done", "running"), timeout=120_000)
    state = page.evaluate("({...document.getElementById('hydra-analysis').dataset})")
    assert state["state"] == "error"
    assert "hash" in state["detail"]
    session = ClientSession.objects.get(video=video)
    assert session.backend == ""  # no hello: the client never got as far as computing
    assert FrameFeature.objects.filter(video=video).count() == 0


def test_a_lost_connection_is_resumed_and_nothing_is_lost_or_stored_twice(site, page, make_video):
    video = ready_video(make_video, seconds=24, fps=10, width=160, height=120, pattern="erratic")
    routes = []

    def proxy(ws_route):
        ws_route.connect_to_server()  # forward both ways, unchanged
        routes.append(ws_route)

    page.route_web_socket(ANALYSIS_SOCKET, proxy)
    page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")
    page.wait_for_function(
        "Number(document.getElementById('hydra-analysis')?.dataset.done) > 0", polling=50, timeout=120_000
    )
    routes[0].close(code=1011, reason="test: connection lost")
    page.wait_for_function(analysis_state_is("done", "error"), timeout=180_000)

    state = page.evaluate("({...document.getElementById('hydra-analysis').dataset})")
    assert state["state"] == "done", state
    assert len(routes) == 2
    session = ClientSession.objects.get(video=video)
    assert f"resume={session.pk}" in routes[1].url
    stored = list(FrameFeature.objects.filter(video=video).order_by("sample_ms").values_list("sample_ms", flat=True))
    assert stored == streaming.assign_sample_times(session)
    assert int(state["done"]) == len(stored)


def test_without_offscreen_canvas_the_page_computes_on_the_main_thread(site, page, make_video, model_version):
    video = ready_video(make_video, seconds=3, fps=12, width=160, height=120, pattern="bars")
    page.add_init_script("delete globalThis.OffscreenCanvas")
    page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")
    page.wait_for_function(analysis_state_is("done", "error"), timeout=180_000)

    state = page.evaluate("({...document.getElementById('hydra-analysis').dataset})")
    assert (state["state"], state["mode"], state["backend"]) == ("done", "main-thread", "wasm"), state
    session = ClientSession.objects.get(video=video)
    rows = list(FrameFeature.objects.filter(session=session).order_by("sample_ms"))
    assert [row.sample_ms for row in rows] == streaming.assign_sample_times(session)
    browser = dequantise(np.stack([np.frombuffer(bytes(row.vector), dtype=np.uint8) for row in rows]))
    server = server_features.compute_server_features(video, [row.sample_ms for row in rows], model_version)
    similarity = (browser * server).sum(axis=1) / (np.linalg.norm(browser, axis=1) * np.linalg.norm(server, axis=1))
    assert similarity.min() >= 0.9995


def test_only_a_page_with_work_loads_the_model_and_opens_the_socket(
    media_root, tmp_path, page, make_video, model_version
):
    """A covered video's page (not drawn for an audit) fetches no client, no model and opens no socket."""
    covered = ready_video(make_video, title="covered", seconds=3, fps=10, width=160, height=120)
    with_work = ready_video(make_video, title="with work", seconds=3, fps=10, width=160, height=120)
    server = ClientSession.objects.create(video=covered, model_version=model_version, is_server=True)
    FrameFeature.objects.bulk_create(
        FrameFeature(
            video=covered,
            model_version=model_version,
            session=server,
            sample_ms=ms,
            vector=bytes(model_version.feature_size),
            status=FrameFeature.Status.ACCEPTED,
        )
        for ms in selectors.expected_sample_times(covered)
    )
    sockets, requests = [], []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.on("request", lambda request: requests.append(request.url))
    with running_site(media_root, tmp_path / "daphne.log", HYDRA_TRUST_AUDIT_RATE="0") as site:
        page.goto(f"{site}/v/{covered.slug}/?hydra_backend=wasm")
        page.wait_for_load_state("networkidle")
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_function("document.getElementById('player').currentTime > 1", timeout=30_000)
        assert page.evaluate("document.getElementById('hydra-analysis')") is None
        assert sockets == []
        assert not [url for url in requests if "/models/" in url or "analysis.js" in url or "/tfjs/" in url]

        page.goto(f"{site}/v/{with_work.slug}/?hydra_backend=wasm")
        page.wait_for_function(analysis_state_is("running", "done"), timeout=120_000)
        assert [url for url in sockets if f"/ws/analysis/{with_work.slug}/" in url]
        assert [url for url in requests if "/models/" in url]
        page.goto("about:blank")  # leave before the site stops (a paused media response holds daphne open)
    assert ClientSession.objects.filter(video=covered, is_server=False).count() == 0


# A battery the test controls: low and not charging until window.__battery.charge().
FAKE_LOW_BATTERY = """
const battery = new EventTarget();
battery.level = 0.1;
battery.charging = false;
window.__battery = { charge() { battery.charging = true; battery.dispatchEvent(new Event('chargingchange')); } };
Object.defineProperty(Navigator.prototype, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
"""
HIDE_TAB = """
Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
document.dispatchEvent(new Event('visibilitychange'));
"""
SHOW_TAB = "delete document.visibilityState; document.dispatchEvent(new Event('visibilitychange'));"
DATASET = "({...document.getElementById('hydra-analysis').dataset})"


def console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_a_low_battery_and_a_hidden_tab_hold_the_work_until_they_end(site, page, make_video):
    video = ready_video(make_video, seconds=20, fps=10, width=160, height=120, pattern="calm")
    errors = console_errors(page)
    page.add_init_script(FAKE_LOW_BATTERY)
    page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")
    page.wait_for_function(analysis_state_is("paused"), timeout=120_000)
    assert page.get_by_text("Paused while the battery is low.").is_visible()
    page.evaluate(HIDE_TAB)
    page.wait_for_function("document.getElementById('hydra-analysis').dataset.detail === 'battery hidden'")
    page.wait_for_timeout(3000)
    state = page.evaluate(DATASET)
    assert (state["state"], state["done"], state["capturedSeek"]) == ("paused", "0", "0"), state
    assert FrameFeature.objects.filter(video=video).count() == 0
    for width, name in ((1100, "desktop"), (390, "phone")):
        page.set_viewport_size({"width": width, "height": 820})
        assert page.get_by_text("Paused while the battery is low and the tab is hidden.").is_visible()
        page.screenshot(path=str(SCREENSHOTS / f"analysis-paused-{name}.png"))

    page.evaluate("window.__battery.charge()")
    page.wait_for_function("document.getElementById('hydra-analysis').dataset.detail === 'hidden'")
    assert page.evaluate(DATASET)["done"] == "0"
    page.evaluate(SHOW_TAB)
    page.wait_for_function(analysis_state_is("done", "error"), timeout=180_000)
    state = page.evaluate(DATASET)
    assert state["state"] == "done" and int(state["done"]) == int(state["total"]) > 0, state
    assert errors == []


def test_the_hidden_seeker_stops_at_its_byte_budget(media_root, tmp_path, page, make_video, model_version):
    video = ready_video(make_video, seconds=30, fps=10, width=320, height=240, pattern="erratic")
    budget = video.rendition.size // 4
    errors = console_errors(page)
    stream_requests = []
    page.on("request", lambda request: "/video.mp4" in request.url and stream_requests.append(request.url))
    with running_site(media_root, tmp_path / "daphne.log", HYDRA_SEEKER_BYTES_PER_VISIT=str(budget)) as site:
        page.goto(f"{site}/v/{video.slug}/?hydra_backend=wasm")  # never played: only the seeker fetches frames
        assert page.evaluate("document.getElementById('hydra-analysis').dataset.seekerBytesPerVisit") == str(budget)
        page.wait_for_function(
            "document.getElementById('hydra-analysis').dataset.seeker === 'spent'", polling=100, timeout=120_000
        )
        spent = page.evaluate(DATASET)
        requests_when_spent = len(stream_requests)
        page.wait_for_timeout(3000)
        state = page.evaluate(DATASET)
        assert page.evaluate("document.querySelectorAll('video').length") == 1  # the seeker is gone
        page.goto("about:blank")  # leave before the site stops
    assert int(spent["seekerBytes"]) >= budget
    assert len(stream_requests) == requests_when_spent, "the seeker downloaded after its budget was spent"
    # A grab already decoding when the budget ran out may still be used (its bytes are spent); no other one.
    assert int(state["capturedSeek"]) <= int(spent["capturedSeek"]) + 1
    assert state["state"] == "running" and int(state["done"]) < int(state["total"]), "work is left for others"
    assert errors == []
