"""Transcoding through a real Celery worker process, Redis broker and the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from hydra_site.celery import app as celery_app
from tests.live_site import database_url
from videos.media_urls import MediaFile, issue
from videos.models import Video

pytestmark = pytest.mark.slow


@pytest.fixture
def celery_worker_process(transactional_db, media_root: Path, tmp_path: Path):
    """A worker on its own queue; the test process sends tasks to that queue instead of running them."""
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("needs DATABASE_URL (PostgreSQL) and REDIS_URL, as make test sets them")
    queue = f"hydra-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HYDRA_TASKS_EAGER": "0",
        "HYDRA_MEDIA_ROOT": str(media_root),
        "HYDRA_CELERY_QUEUE": queue,
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "hydra_site", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = False, queue
    try:
        yield tmp_path / "worker.log"
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


def wait_for_status(video: Video, statuses: set[str], worker_log: Path, timeout: float = 180) -> Video:
    """Poll the row until the worker has moved it on (there is no cross-process event to wait on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video.refresh_from_db()
        if video.status in statuses:
            return video
        time.sleep(0.2)
    raise AssertionError(f"video still {video.status}; worker log:\n{worker_log.read_text()[-4000:]}")


def wait_for_log(worker_log: Path, line: str, timeout: float = 60) -> bool:
    """The worker logs after the commit (and the video_ready receivers), so the row can be READY first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in worker_log.read_text():
            return True
        time.sleep(0.2)
    raise AssertionError(f"{line!r} not in the worker log:\n{worker_log.read_text()[-4000:]}")


def test_an_upload_is_transcoded_by_a_real_worker(celery_worker_process, client, owner, make_video, media_root):
    client.force_login(owner)
    with make_video(seconds=2, fps=15, width=640, height=360, audio=True).open("rb") as handle:
        response = client.post("/api/videos/", {"title": "Through the broker", "file": handle})
    assert response.status_code == 201
    video = Video.objects.get(slug=response.json()["slug"])
    assert video.status == Video.Status.PROCESSING  # not run in-process: the worker has it

    video = wait_for_status(video, {Video.Status.READY, Video.Status.FAILED}, celery_worker_process)
    assert video.status == Video.Status.READY, video.failure_reason
    assert (video.rendition_width, video.rendition_height, video.rendition_fps) == (640, 360, 15.0)
    assert (media_root / video.rendition.name).is_file() and (media_root / video.poster.name).is_file()
    assert not list(media_root.rglob("*.part")), "no temporary rendition left behind"
    assert wait_for_log(celery_worker_process, f"Video {video.slug} is ready")
    ranged = client.get(issue(video, MediaFile.RENDITION), headers={"range": "bytes=0-99"})
    assert ranged.status_code == 206


def test_the_task_acknowledges_late():
    from videos.tasks import transcode_video

    assert transcode_video.acks_late is True
