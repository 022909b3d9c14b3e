"""The analysis task: idempotent, retried on transient failures, and run by a real Celery worker."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import OperationalError, connection, transaction

from hydra_site.celery import app as celery_app
from inference.models import FrameScore, Verdict
from inference.services import settlement
from inference.tasks import analyse_video_task
from videos.models import Video

REPO = Path(__file__).resolve().parents[2]


def features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 3, size=(n, 1280)).astype(np.float32)


@pytest.fixture
def analysed_video(default_heads, make_analysed_video, store_features, model_version) -> Video:
    video = make_analysed_video(seconds=5, fps=25)
    store_features(video, model_version, [0, 1000, 2000, 3000, 4000], features(5))
    return video


def verdict_rows() -> list[tuple]:
    return list(Verdict.objects.values_list("pk", "head_version_id", "score", "flagged", "segments", "coverage"))


def test_running_the_task_twice_gives_the_same_verdicts_and_no_duplicates(analysed_video):
    first = analyse_video_task.delay(analysed_video.pk).get()
    rows = verdict_rows()
    second = analyse_video_task.delay(analysed_video.pk).get()
    assert first == second and set(first) == {"nudity"}
    assert verdict_rows() == rows and len(rows) == 1
    assert FrameScore.objects.count() == 5


def test_a_transient_database_failure_is_retried_and_then_succeeds(analysed_video, monkeypatch):
    real = settlement.analyse_and_announce
    calls: list[int] = []

    def flaky(video):
        calls.append(video.pk)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(video)

    monkeypatch.setattr(settlement, "analyse_and_announce", flaky)
    # throw=False: let Celery's own retry path run (eager mode would otherwise propagate the Retry).
    result = analyse_video_task.apply(args=(analysed_video.pk,), throw=False).get()
    assert calls == [analysed_video.pk, analysed_video.pk]
    assert set(result) == {"nudity"} and Verdict.objects.count() == 1


def test_a_deleted_video_is_skipped(db):
    assert analyse_video_task.delay(987654).get() == {}


def test_the_task_module_does_not_load_tensorflow():
    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'hydra_site.settings');"
        "django.setup();"
        "import inference.tasks, inference.trust.tasks, inference.scheduling, inference.heads, inference.consumers;"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class WorkerLog:
    """Lines of a worker's output, read on a thread, so the test waits for events rather than sleeping."""

    def __init__(self, process: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in worker output:\n{''.join(self.seen[-40:])}") from None
            self.seen.append(line)
            if regex.search(line):
                return line


@pytest.fixture
def celery_worker(transactional_db, model_root):
    """A real `celery worker` process on the test database and Redis; tasks go through the broker."""
    if not django_settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs REDIS_URL: a real broker")
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HYDRA_TASKS_EAGER": "0",
        "HYDRA_MODEL_ROOT": str(model_root),
        "HYDRA_SAMPLE_INTERVAL_MS": str(django_settings.HYDRA_SAMPLE_INTERVAL_MS),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    process = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "celery"), "-A", "hydra_site", "worker", "-Q", "hydra", "-P", "solo"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = WorkerLog(process)
    try:
        log.wait_for(r"ready\.")
        yield log
    finally:
        celery_app.conf.task_always_eager = eager
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_real_worker_retries_while_the_video_is_locked_then_stores_the_verdicts_once(
    celery_worker, default_heads, make_analysed_video, store_features, model_version
):
    video = make_analysed_video(seconds=5, fps=25)
    store_features(video, model_version, [0, 1000, 2000, 3000, 4000], features(5))

    with transaction.atomic():
        Video.objects.select_for_update().get(pk=video.pk)  # another analysis holds the video
        analyse_video_task.delay(video.pk)
        celery_worker.wait_for(r"analyse_video_task\[.*\] retry: Retry in")
    celery_worker.wait_for(r"analyse_video_task\[.*\] succeeded")
    rows = verdict_rows()
    assert len(rows) == 1 and rows[0][-1] == 1.0
    assert FrameScore.objects.filter(video=video).count() == 5

    analyse_video_task.delay(video.pk)
    celery_worker.wait_for(r"analyse_video_task\[.*\] succeeded")
    assert verdict_rows() == rows
    assert FrameScore.objects.filter(video=video).count() == 5
