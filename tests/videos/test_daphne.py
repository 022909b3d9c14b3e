"""Streaming through a real daphne process: the ASGI path reads the file chunk by chunk, ranges intact."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.urls import reverse

from tests.live_site import running_daphne
from videos.media_urls import MediaFile, issue

pytestmark = pytest.mark.slow


@pytest.fixture
def daphne_url(transactional_db, media_root: Path, tmp_path: Path):
    with running_daphne(tmp_path / "daphne.log", HYDRA_MEDIA_ROOT=str(media_root)) as url:
        yield url


def fetch(url: str, headers: dict[str, str] | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_daphne_serves_ranges_of_a_rendition_larger_than_one_chunk(daphne_url, owner, ready_video):
    video = ready_video(owner, seconds=4, fps=24, width=640, height=360, pattern="noise")
    data = Path(video.rendition.path).read_bytes()
    assert len(data) > 3 * 256 * 1024, "several read chunks"
    url = daphne_url + issue(video, MediaFile.RENDITION)

    status, headers, body = fetch(url)
    assert (status, body) == (200, data)
    status, headers, body = fetch(url, {"Range": f"bytes=1000-{len(data) - 1000}"})
    assert status == 206 and headers["Content-Range"] == f"bytes 1000-{len(data) - 1000}/{len(data)}"
    assert body == data[1000 : len(data) - 999]
    status, headers, body = fetch(url, {"Range": "bytes=-10"})
    assert (status, body) == (206, data[-10:])
    status, headers, _ = fetch(url, {"Range": f"bytes={len(data) + 5}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_daphne_player_page_is_cross_origin_isolated(daphne_url, owner, ready_video):
    video = ready_video(owner)
    status, headers, body = fetch(daphne_url + reverse("videos:player", args=[video.slug]))
    assert status == 200 and b'<video id="player"' in body
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
