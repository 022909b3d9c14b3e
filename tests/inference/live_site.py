"""A live Hydra for the analysis's browser tests: the site in daphne (``tests.live_site``) with the
browser bundle built, a video uploaded through the site's own ingest, and the client's states."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.live_site import ROOT, running_daphne
from videos.models import Video
from videos.services import ingest_upload

BUILD = ROOT / "static" / "js" / "build" / "analysis.js"


@contextmanager
def running_site(media_root: Path, log: Path, access_log: Path | None = None, **settings_env: str) -> Iterator[str]:
    """Serve the site with daphne from the test database, with the built browser bundle; yields its base URL.

    ``settings_env``: more settings for the site, as environment variables (e.g. ``HYDRA_TRUST_AUDIT_RATE="0"``).
    """
    if not BUILD.exists():
        raise RuntimeError("no browser build: run `make assets` (node static/js/build.mjs) first")
    with running_daphne(
        log,
        access_log,
        HYDRA_MEDIA_ROOT=str(media_root),
        HYDRA_MODEL_ROOT=str(settings.HYDRA_MODEL_ROOT),
        HYDRA_SAMPLE_INTERVAL_MS=str(settings.HYDRA_SAMPLE_INTERVAL_MS),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        **settings_env,
    ) as url:
        yield url


def ready_video(make_video, title: str = "analysed clip", **clip) -> Video:
    """Upload a synthetic clip through the site's own ingest (transcoded in-process) and return it ready."""
    path = make_video(**clip)
    owner, _ = get_user_model().objects.get_or_create(username="uploader")
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
    video = ingest_upload(owner=owner, upload=upload, title=title)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.failure_reason
    return video


ANALYSIS_STATE = "document.getElementById('hydra-analysis')?.dataset.state"


def analysis_state_is(*states: str) -> str:
    """A JS predicate for page.wait_for_function: the client reports one of these states."""
    return f"{list(states)!r}.includes({ANALYSIS_STATE})"
