"""inference.services.settlement and the scheduling of its passes: one pass per window, read top to bottom."""

from __future__ import annotations

import pytest
from django.db import transaction

from inference import scheduling, selectors, signals
from inference.models import ClientSession, FrameFeature, Recomputation
from inference.protocol import FrameSample
from inference.services import settlement, streaming
from inference.trust import services as trust
from tests.inference.streaming_factories import make_model, make_ready_video, vector

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings) -> ClientSession:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    return streaming.start_client_session(video=make_ready_video(), model_version=make_model())


def test_batches_of_one_window_share_one_settlement_pass_queued_after_it(session, monkeypatch, settings):
    from django.core.cache import cache

    from inference import tasks

    settings.HYDRA_SETTLE_DELAY_SECONDS = 2.0
    monkeypatch.setitem(tasks.settle_video_task.app.conf, "task_always_eager", False)
    queued = []
    monkeypatch.setattr(
        tasks.settle_video_task, "apply_async", lambda args, countdown: queued.append((args, countdown))
    )
    clock = [1_000_000.5]  # half a second into a window
    monkeypatch.setattr(scheduling.time, "time", lambda: clock[0])
    video, model_version = session.video, session.model_version
    cache.clear()

    scheduling.request_settlement(video.pk, model_version.pk)
    clock[0] += 1.0
    scheduling.request_settlement(video.pk, model_version.pk)  # same window: shares the queued pass
    assert queued == [((video.pk, model_version.pk), pytest.approx(1.5 + scheduling.SETTLEMENT_MARGIN_SECONDS))]

    scheduling._settlements_requested.clear()  # another process: it asks Redis, which says the pass is queued
    scheduling.request_settlement(video.pk, model_version.pk)
    assert len(queued) == 1

    clock[0] += 1.0  # the next window: its batches need a pass of their own
    scheduling.request_settlement(video.pk, model_version.pk)
    assert queued[1] == ((video.pk, model_version.pk), pytest.approx(1.5 + scheduling.SETTLEMENT_MARGIN_SECONDS))


def test_in_process_tasks_settle_every_batch_at_once(session, monkeypatch):
    from inference import tasks

    settled = []
    monkeypatch.setitem(tasks.settle_video_task.app.conf, "task_always_eager", True)
    monkeypatch.setattr(settlement, "settle_video", lambda video, model_version: settled.append(video.pk) or [])
    scheduling.request_settlement(session.video_id, session.model_version_id)
    scheduling.request_settlement(session.video_id, session.model_version_id)
    assert settled == [session.video_id, session.video_id]


def test_a_settlement_pass_judges_pending_features_without_touching_others(session):
    video, model_version = session.video, session.model_version
    peer = streaming.start_client_session(video=video, model_version=model_version, ip_address="10.9.0.1")
    session.ip_address = "10.8.0.1"
    session.save(update_fields=["ip_address"])
    streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, vector(1))])
    streaming.record_frame_features(peer, [FrameSample(0, 1.0, vector(1))])

    settlement.settle_video(video, model_version)
    statuses = dict(FrameFeature.objects.filter(session=session).values_list("sample_ms", "status"))
    # Sample 0 has two independent agreeing replicas; sample 1000 still waits for its second one.
    assert statuses == {0: FrameFeature.Status.ACCEPTED, 1000: FrameFeature.Status.PENDING}


def test_a_pass_computes_the_sample_grid_once_and_hands_it_down(session, monkeypatch):
    video, model_version = session.video, session.model_version
    peer = streaming.start_client_session(video=video, model_version=model_version, ip_address="10.9.0.1")
    session.ip_address = "10.8.0.1"
    session.save(update_fields=["ip_address"])
    streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    streaming.record_frame_features(peer, [FrameSample(0, 1.0, vector(1))])
    grids, handed = [], []
    real = selectors.expected_sample_times
    monkeypatch.setattr(selectors, "expected_sample_times", lambda v: grids.append(v.pk) or real(v))

    def due(video, model_version, head_versions, sample_times):
        handed.append(("analysis_due", list(sample_times)))
        return True

    def analyse(video, model_version, head_versions, sample_times):
        handed.append(("analyse_video", list(sample_times)))
        return []

    monkeypatch.setattr(settlement.analysis, "analysis_due", due)
    monkeypatch.setattr(settlement.analysis, "analyse_video", analyse)

    settlement.settle_video(video, model_version)

    assert grids == [video.pk]
    assert handed == [("analysis_due", real(video)), ("analyse_video", real(video))]
    assert FrameFeature.objects.filter(video=video, status=FrameFeature.Status.ACCEPTED).count() == 2  # verified


def test_trust_returns_what_it_changed_and_the_pass_queues_it_once_committed(
    session, monkeypatch, django_capture_on_commit_callbacks
):
    video, model_version = session.video, session.model_version
    peer = streaming.start_client_session(video=video, model_version=model_version, ip_address="10.9.0.1")
    session.ip_address = "10.8.0.1"
    session.save(update_fields=["ip_address"])
    streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    streaming.record_frame_features(peer, [FrameSample(0, 1.0, vector(200))])  # disagrees: a dispute

    with transaction.atomic():
        follow_ups = trust.verify_pending(video, model_version)
    assert follow_ups.recompute == {(video.pk, model_version.pk): None}
    assert Recomputation.objects.filter(video=video, reason="dispute").count() == 1

    heard = []
    signals.recomputation_requested.connect(receiver := lambda sender, **kwargs: heard.append(kwargs), weak=False)
    monkeypatch.setattr(scheduling.trust_tasks.recompute_samples, "delay", lambda *args: None)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            settlement.queue_follow_ups(follow_ups)
            assert heard == []  # nothing leaves before the change is committed
    finally:
        signals.recomputation_requested.disconnect(receiver)
    assert len(callbacks) == 1
    assert heard == [
        {"signal": signals.recomputation_requested, "video_id": video.pk, "model_version_id": model_version.pk}
    ]
