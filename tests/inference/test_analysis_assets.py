"""The analysis include on the player page and the static files it loads into a cross-origin-isolated page."""

from __future__ import annotations

import pytest

from tests.inference.live_site import BUILD
from tests.inference.streaming_factories import make_model, make_ready_video
from videos.models import Video

pytestmark = pytest.mark.django_db


def test_the_player_page_carries_the_notice_and_the_socket_path(client):
    make_model()  # without an active model version no page analyses (tests/inference/test_page_analyses.py)
    video = make_ready_video()
    page = client.get(f"/v/{video.slug}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="hydra-analysis"' in html
    assert f'data-ws-path="/ws/analysis/{video.slug}/"' in html
    assert "This page helps analyse this video." in html
    assert 'type="module" src="/static/js/build/analysis.js"' in html


def test_no_analysis_for_a_video_that_cannot_play(client):
    video = make_ready_video(status=Video.Status.PROCESSING, rendition="")
    client.force_login(video.owner)  # the owner sees the page while the video is processed
    page = client.get(f"/v/{video.slug}/")
    assert page.status_code == 200
    assert "being processed" in page.content.decode()
    assert 'id="hydra-analysis"' not in page.content.decode()


@pytest.mark.parametrize("path", ["js/build/analysis.js", "js/build/worker.js", "js/build/tfjs/tfjs-backend-wasm.wasm"])
def test_built_assets_may_load_into_an_isolated_page(client, path):
    assert BUILD.exists(), "run `make assets` (node static/js/build.mjs) first"
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["Cross-Origin-Embedder-Policy"] == "require-corp"
