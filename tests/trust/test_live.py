"""The "Done when" of issue 6 against the real thing: a daphne process, a Celery worker, PostgreSQL and Redis.

Simulated viewers speak the websocket protocol over real TCP (their addresses in X-Forwarded-For,
daphne started with --proxy-headers); every recomputation, quarantine and analysis runs in the
worker. An unwatched video is covered by the server once its deadline passes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Max, Min
from django.utils import timezone

from hydra_site.celery import app as celery_app
from inference import selectors
from inference.models import Recomputation, Verdict
from inference.trust import services as trust_services
from inference.trust import tasks as trust_tasks
from tests.live_site import database_url, free_port, wait_for_port
from tests.trust import harness, scenario

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 45  # full coverage due this long after a video is ready
SLACK_SECONDS = 25  # the server starts this long (plus its per-sample estimate) before


def _process_env(media_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "HYDRA_TASKS_EAGER": "0",
        "HYDRA_MEDIA_ROOT": str(media_root),
        "HYDRA_MODEL_ROOT": str(settings.HYDRA_MODEL_ROOT),
        "HYDRA_SAMPLE_INTERVAL_MS": str(settings.HYDRA_SAMPLE_INTERVAL_MS),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@pytest.fixture
def live_trust(transactional_db, media_root: Path, tmp_path: Path) -> Iterator[str]:
    """A daphne process and a Celery worker on the test database; yields the websocket base URL."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs REDIS_URL: a real broker and channel layer")
    env = _process_env(media_root)
    port = free_port()
    celery_app.control.purge()
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("daphne", "worker")}
    daphne_command = [sys.executable, "-m", "daphne", "--proxy-headers", "-b", "127.0.0.1", "-p", str(port)]
    daphne_command.append("hydra_site.asgi:application")
    worker_command = [str(Path(sys.executable).parent / "celery"), "-A", "hydra_site", "worker", "-P", "solo"]
    worker_command += ["-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--without-gossip", "--without-mingle", "-l", "INFO"]
    daphne = subprocess.Popen(
        daphne_command,
        cwd=ROOT,
        env=env,
        stdout=logs["daphne"],
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(worker_command, cwd=ROOT, env=env, stdout=logs["worker"], stderr=subprocess.STDOUT)
    try:
        wait_for_port(daphne, port, tmp_path / "daphne.log")
        yield f"ws://127.0.0.1:{port}"
    finally:
        for process in (daphne, worker):
            process.terminate()
            process.wait(timeout=30)
        celery_app.control.purge()  # deadlines still held by the worker go back to the queue when it stops
        for log in logs.values():
            log.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300.0) -> float:
    """Poll the database until ``condition`` holds (the worker's results arrive there); returns the seconds waited."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


def settled(videos) -> bool:
    """Every video fully covered, no recomputation open, and a full-coverage verdict newer than the last one done."""
    model_version = selectors.active_model_version()
    for video in videos:
        if len(selectors.coverage(video, model_version).covered_ms) < len(selectors.expected_sample_times(video)):
            return False
        if Recomputation.objects.filter(video=video, done_at__isnull=True).exists():
            return False
        last_done = Recomputation.objects.filter(video=video).aggregate(last=Max("done_at"))["last"]
        verdicts = Verdict.objects.filter(video=video, coverage=1.0)
        if not verdicts.exists() or (last_done and not verdicts.filter(computed_at__gt=last_done).exists()):
            return False
    return True


def start_deadline(video) -> None:
    """What video_ready does (schedule_coverage), through the broker whatever this process's eager setting."""
    countdown = trust_services.coverage_countdown_seconds(video, len(selectors.expected_sample_times(video)))
    celery_app.send_task(trust_tasks.cover_video.name, args=[video.pk], countdown=countdown)


def test_liars_against_daphne_and_a_worker_and_an_unwatched_video(
    live_trust, ready_video, truth_of, nudity_head, settings
):
    settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS = DEADLINE_SECONDS
    settings.HYDRA_TRUST_COVERAGE_SLACK_SECONDS = SLACK_SECONDS
    runs = scenario.make_runs(ready_video)
    unwatched = ready_video("unwatched", pattern="calm", seed=9)
    truths = {title: truth_of(video) for title, video in runs["honest"].items()}
    threshold = scenario.set_unambiguous_threshold(truths, nudity_head)
    connect = harness.WebsocketsTransport.connector(live_trust, origin="http://127.0.0.1")

    # An unwatched video: the worker waits for viewers, then covers it all before its deadline.
    ready_at = timezone.now()
    start_deadline(unwatched)
    assert len(selectors.coverage(unwatched, selectors.active_model_version()).covered_ms) == 0
    wait_until(lambda: settled([unwatched]), "the unwatched video's coverage")
    started = Recomputation.objects.filter(video=unwatched).aggregate(at=Min("requested_at"))["at"]
    analysed = Verdict.objects.get(video=unwatched).computed_at
    assert (started - ready_at).total_seconds() >= DEADLINE_SECONDS - SLACK_SECONDS - 2  # it waited for viewers
    assert (analysed - ready_at).total_seconds() <= DEADLINE_SECONDS  # and met the deadline
    assert set(Recomputation.objects.filter(video=unwatched).values_list("reason", flat=True)) == {"coverage"}

    results = {}
    for run, with_liars in (("honest", False), ("mixed", True)):
        videos = runs[run]
        for video in videos.values():
            start_deadline(video)
        audiences = scenario.audiences(list(truths), run[0], with_liars=with_liars)
        by_title = {t: dataclasses.replace(truth, slug=videos[t].slug) for t, truth in truths.items()}
        asyncio.run(harness.watch_together(audiences, by_title, connect, nudity_head))
        wait_until(lambda videos=videos: settled(videos.values()), f"the {run} run to settle")
        results[run] = scenario.summarise(videos, truths, audiences)

    figures = scenario.check_outcome(
        results["honest"], results["mixed"], runs["mixed"], truths, nudity_head, settings.HYDRA_TRUST_MIN_ASSIGNMENT
    )
    timing = {"deadline_s": DEADLINE_SECONDS, "unwatched_started_s": (started - ready_at).total_seconds()}
    timing["unwatched_analysed_s"] = (analysed - ready_at).total_seconds()
    print("\nTRUST-FIGURES live", json.dumps({"threshold": round(float(threshold), 3), **timing, **figures}))


def test_a_caught_pair_leaves_no_verdict_behind_against_daphne_and_a_worker(
    live_trust, ready_video, truth_of, nudity_head, settings
):
    """Issue 12, attack 1 live: two new colluders lie on every sample, one pair hiding, one false-flagging.

    The worker's settlement pass analyses their agreed lies before the spot checks it queued run;
    the spot checks quarantine them, and the verdicts must then be the server's own at once.
    """
    settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS = 3600  # no deadline covers for the liars here
    videos = {"erratic": ready_video("pair-erratic", pattern="erratic", seed=2)}
    videos["calm"] = ready_video("pair-calm", pattern="calm", seed=9)
    truths = {title: truth_of(video) for title, video in videos.items()}
    scenario.set_unambiguous_threshold(truths, nudity_head)  # erratic is flagged, calm is cleared
    connect = harness.WebsocketsTransport.connector(live_trust, origin="http://127.0.0.1")

    def pair(name: str, behaviour: harness.Behaviour, network: int) -> list[harness.Viewer]:
        return [
            harness.Viewer(
                name=f"{name}{i}", behaviour=behaviour, device_id=f"{name}{i:04d}", ip=f"10.{network}.{i}.9", seed=name
            )
            for i in range(2)
        ]

    audiences = {
        "erratic": pair("hide", harness.Behaviour.COLLUDER, 70),
        "calm": pair("frame", harness.Behaviour.FLIP_TO_NUDE, 71),
    }
    by_title = {t: dataclasses.replace(truth, slug=videos[t].slug) for t, truth in truths.items()}
    asyncio.run(harness.watch_together(audiences, by_title, connect, nudity_head))
    wait_until(lambda: settled(videos.values()), "the pairs' videos to settle")

    from inference.models import ClientSession
    from moderation.models import Case

    liars = ClientSession.objects.filter(video__in=videos.values(), is_server=False)
    assert liars.count() == 4 and set(liars.values_list("state", flat=True)) == {ClientSession.State.QUARANTINED}
    assert Verdict.objects.get(video=videos["erratic"], head_version__head__category="nudity").flagged
    assert Case.objects.filter(video=videos["erratic"], source=Case.Source.FLAG).exists()
    assert not Verdict.objects.get(video=videos["calm"], head_version__head__category="nudity").flagged
    assert not Case.objects.filter(video=videos["calm"]).exists()
