"""The adversarial simulation in process: honest viewers on every browser profile mixed with liars of every kind.

The real consumer (Channels' WebsocketCommunicator against the ASGI application), PostgreSQL and
the trust services; Celery runs eagerly. test_live.py runs the same scenario against a daphne
process and a Celery worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from django.conf import settings

from hydra_site.asgi import application
from inference.trust.tasks import cover_video
from tests.trust import harness, scenario

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def watch(videos: dict, truths: dict, audiences: dict, head) -> scenario.RunResult:
    """All viewers watch at the same time; then the deadline passes and the server covers the rest."""
    truths = {title: dataclasses.replace(truth, slug=videos[title].slug) for title, truth in truths.items()}
    connect = harness.CommunicatorTransport.connector(application, origin="http://testserver")

    asyncio.run(harness.watch_together(audiences, truths, connect, head))
    for video in videos.values():
        cover_video.delay(video.pk)
    return scenario.summarise(videos, truths, audiences)


def test_liars_are_caught_and_change_no_verdict(ready_video, truth_of, nudity_head, seeded_spot_checks):
    runs = {
        run: {
            title: ready_video(f"{run}-{title}", pattern=pattern, seed=seed) for title, pattern, seed in scenario.CLIPS
        }
        for run in ("honest", "mixed")
    }
    truths = {title: truth_of(video) for title, video in runs["honest"].items()}
    threshold = scenario.set_unambiguous_threshold(truths, nudity_head)
    titles = list(truths)

    honest = watch(runs["honest"], truths, scenario.audiences(titles, "h", with_liars=False), nudity_head)
    mixed = watch(runs["mixed"], truths, scenario.audiences(titles, "m", with_liars=True), nudity_head)

    figures = scenario.check_outcome(
        honest, mixed, runs["mixed"], truths, nudity_head, settings.HYDRA_TRUST_MIN_ASSIGNMENT
    )
    print("\nTRUST-FIGURES in-process", json.dumps({"threshold": round(float(threshold), 3), **figures}))
