"""Storing browser features and reading coverage back (services and selectors, without a websocket)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inference import selectors, services
from inference.models import ClientSession, FrameFeature
from inference.protocol import ErrorCode, FrameSample, ProtocolError
from tests.inference.streaming_factories import FEATURES, make_model, make_ready_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings) -> ClientSession:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    model_version = make_model()
    return services.start_client_session(video=make_ready_video(), model_version=model_version)


def vector(fill: int) -> bytes:
    return bytes([fill]) * FEATURES


def test_a_batch_is_stored_pending_in_one_statement(session):
    samples = [FrameSample(ms, 30.0, vector(ms // 1000)) for ms in (0, 1000, 2000)]
    with CaptureQueriesContext(connection) as queries:
        recorded = services.record_frame_features(session, samples)
    assert len(queries.captured_queries) == 1  # the session check, its last_seen_at and the insert together
    assert (recorded.accepted, recorded.duplicates) == ((0, 1000, 2000), ())
    stored = FrameFeature.objects.filter(session=session)
    assert sorted(stored.values_list("sample_ms", "status", "inference_ms")) == [
        (ms, FrameFeature.Status.PENDING, 30.0) for ms in (0, 1000, 2000)
    ]
    assert [bytes(v) for v in stored.order_by("sample_ms").values_list("vector", flat=True)] == [
        vector(0),
        vector(1),
        vector(2),
    ]


@pytest.mark.parametrize(
    "store", [services._insert_pending_postgresql, services._insert_pending_portable], ids=["postgresql", "portable"]
)
def test_both_ways_of_storing_agree_on_new_duplicate_and_quarantined(session, store):
    before = ClientSession.objects.get(pk=session.pk).last_seen_at
    assert store(session, [FrameSample(0, None, vector(1)), FrameSample(1000, 2.5, vector(2))]) == [0, 1000]
    assert ClientSession.objects.get(pk=session.pk).last_seen_at > before
    assert store(session, [FrameSample(1000, 2.5, vector(9)), FrameSample(2000, 2.5, vector(3))]) == [2000]
    assert bytes(FrameFeature.objects.get(session=session, sample_ms=1000).vector) == vector(2)  # first copy kept
    ClientSession.objects.filter(pk=session.pk).update(state=ClientSession.State.QUARANTINED)
    assert store(session, [FrameSample(3000, 2.5, vector(4))]) is None
    assert FrameFeature.objects.filter(session=session).count() == 3


def test_a_quarantined_session_is_refused_and_stores_nothing(session):
    ClientSession.objects.filter(pk=session.pk).update(
        state=ClientSession.State.QUARANTINED, state_reason="caught lying"
    )
    with pytest.raises(ProtocolError) as refused:
        services.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    assert refused.value.code == ErrorCode.SESSION_MISMATCH
    assert "quarantined" in refused.value.message
    assert not FrameFeature.objects.exists()


def test_a_vector_of_the_wrong_length_stores_nothing(session):
    with pytest.raises(ValueError, match="1000"):
        services.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, b"\x01")])
    assert FrameFeature.objects.count() == 0


def test_coverage_counts_accepted_sample_times_of_the_video_once(session):
    video, model_version = session.video, session.model_version
    other = services.start_client_session(video=video, model_version=model_version)
    services.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, vector(1))])
    # Two independent sessions agree on sample 0, so the trust layer accepts it (docs/trust.md).
    services.record_frame_features(other, [FrameSample(0, 1.0, vector(1))])
    assert selectors.coverage(video, model_version).covered_ms == ()  # stored pending: nothing judged yet
    services.settle_video(video, model_version)
    FrameFeature.objects.filter(session=session, sample_ms=1000).update(status=FrameFeature.Status.REJECTED)

    covered = selectors.coverage(video, model_version)
    assert (covered.covered_ms, covered.total) == ((0,), 3)
    assert covered.fraction == pytest.approx(1 / 3)
    assert selectors.coverage(video, make_model("c", active=False)).covered_ms == ()


def test_resuming_reopens_a_closed_session(session):
    services.close_client_session(session)
    again = services.start_client_session(
        video=session.video, model_version=session.model_version, resume_id=str(session.pk)
    )
    assert again.pk == session.pk
    assert again.state == ClientSession.State.ACTIVE


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
    monkeypatch.setattr(services.time, "time", lambda: clock[0])
    video, model_version = session.video, session.model_version
    cache.clear()

    services.request_settlement(video.pk, model_version.pk)
    clock[0] += 1.0
    services.request_settlement(video.pk, model_version.pk)  # same window: shares the queued pass
    assert queued == [((video.pk, model_version.pk), pytest.approx(1.5 + services.SETTLEMENT_MARGIN_SECONDS))]

    services._settlements_requested.clear()  # another process: it asks Redis, which says the pass is queued
    services.request_settlement(video.pk, model_version.pk)
    assert len(queued) == 1

    clock[0] += 1.0  # the next window: its batches need a pass of their own
    services.request_settlement(video.pk, model_version.pk)
    assert queued[1] == ((video.pk, model_version.pk), pytest.approx(1.5 + services.SETTLEMENT_MARGIN_SECONDS))


def test_in_process_tasks_settle_every_batch_at_once(session, monkeypatch):
    from inference import tasks

    settled = []
    monkeypatch.setitem(tasks.settle_video_task.app.conf, "task_always_eager", True)
    monkeypatch.setattr(services, "settle_video", lambda video, model_version: settled.append(video.pk) or [])
    services.request_settlement(session.video_id, session.model_version_id)
    services.request_settlement(session.video_id, session.model_version_id)
    assert settled == [session.video_id, session.video_id]


def test_a_settlement_pass_judges_pending_features_without_touching_others(session):
    video, model_version = session.video, session.model_version
    peer = services.start_client_session(video=video, model_version=model_version, ip_address="10.9.0.1")
    session.ip_address = "10.8.0.1"
    session.save(update_fields=["ip_address"])
    services.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, vector(1))])
    services.record_frame_features(peer, [FrameSample(0, 1.0, vector(1))])

    services.settle_video(video, model_version)
    statuses = dict(FrameFeature.objects.filter(session=session).values_list("sample_ms", "status"))
    # Sample 0 has two independent agreeing replicas; sample 1000 still waits for its second one.
    assert statuses == {0: FrameFeature.Status.ACCEPTED, 1000: FrameFeature.Status.PENDING}


def test_a_new_session_of_a_quarantined_device_is_refused_from_its_hello_on(session):
    from inference.models import Contributor

    Contributor.objects.create(key="device:caught-device-1", quarantined_at=timezone.now())
    services.identify_client_session(session, backend="wasm", device_id="caught-device-1")
    assert ClientSession.objects.get(pk=session.pk).state == ClientSession.State.QUARANTINED
    with pytest.raises(ProtocolError, match="device was quarantined"):
        services.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    assert not FrameFeature.objects.exists()
