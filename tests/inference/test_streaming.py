"""inference.services.streaming: sessions, assignment and storing browser features (without a websocket)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inference import selectors
from inference.errors import AnalysisRefused, RefusalReason
from inference.models import ClientSession, FrameFeature
from inference.protocol import FrameSample
from inference.services import settlement, streaming
from tests.inference.streaming_factories import make_model, make_ready_video, vector

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings) -> ClientSession:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    model_version = make_model()
    return streaming.start_client_session(video=make_ready_video(), model_version=model_version)


def test_a_batch_is_stored_pending_in_one_statement(session):
    samples = [FrameSample(ms, 30.0, vector(ms // 1000)) for ms in (0, 1000, 2000)]
    with CaptureQueriesContext(connection) as queries:
        recorded = streaming.record_frame_features(session, samples)
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
    "store", [streaming._insert_pending_postgresql, streaming._insert_pending_portable], ids=["postgresql", "portable"]
)
def test_both_ways_of_storing_agree_on_new_duplicate_and_quarantined(session, store):
    def alone(*samples: FrameSample) -> list[int] | None:
        return store([streaming.ViewerBatch(session, AnonymousUser(), samples)])[0]

    before = ClientSession.objects.get(pk=session.pk).last_seen_at
    assert alone(FrameSample(0, None, vector(1)), FrameSample(1000, 2.5, vector(2))) == [0, 1000]
    assert ClientSession.objects.get(pk=session.pk).last_seen_at > before
    assert alone(FrameSample(1000, 2.5, vector(9)), FrameSample(2000, 2.5, vector(3))) == [2000]
    assert bytes(FrameFeature.objects.get(session=session, sample_ms=1000).vector) == vector(2)  # first copy kept
    ClientSession.objects.filter(pk=session.pk).update(state=ClientSession.State.QUARANTINED)
    assert alone(FrameSample(3000, 2.5, vector(4))) is None
    assert FrameFeature.objects.filter(session=session).count() == 3


@pytest.mark.parametrize(
    "store", [streaming._insert_pending_postgresql, streaming._insert_pending_portable], ids=["postgresql", "portable"]
)
def test_both_ways_of_storing_agree_on_several_sessions_at_once(session, store):
    other = streaming.start_client_session(video=make_ready_video("other"), model_version=session.model_version)
    caught = streaming.start_client_session(video=session.video, model_version=session.model_version)
    ClientSession.objects.filter(pk=caught.pk).update(state=ClientSession.State.QUARANTINED)
    store([streaming.ViewerBatch(session, AnonymousUser(), [FrameSample(0, 1.0, vector(1))])])
    answer = store(
        [
            streaming.ViewerBatch(
                session, AnonymousUser(), [FrameSample(0, 1.0, vector(7)), FrameSample(1000, 1.0, vector(2))]
            ),
            streaming.ViewerBatch(caught, AnonymousUser(), [FrameSample(0, 1.0, vector(3))]),
            streaming.ViewerBatch(
                other, AnonymousUser(), [FrameSample(0, 1.0, vector(4)), FrameSample(2000, 1.0, vector(5))]
            ),
        ]
    )
    assert [sorted(times) if times is not None else None for times in answer] == [[1000], None, [0, 2000]]
    assert sorted(FrameFeature.objects.values_list("session_id", "sample_ms", "video_id")) == sorted(
        [
            (session.pk, 0, session.video_id),
            (session.pk, 1000, session.video_id),
            (other.pk, 0, other.video_id),
            (other.pk, 2000, other.video_id),
        ]
    )
    assert bytes(FrameFeature.objects.get(session=session, sample_ms=0).vector) == vector(1)


def test_a_quarantined_session_is_refused_and_stores_nothing(session):
    ClientSession.objects.filter(pk=session.pk).update(
        state=ClientSession.State.QUARANTINED, state_reason="caught lying"
    )
    with pytest.raises(AnalysisRefused) as refused:
        streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    assert refused.value.reason == RefusalReason.QUARANTINED
    assert "quarantined" in refused.value.message
    assert not FrameFeature.objects.exists()


def test_a_vector_of_the_wrong_length_stores_nothing(session):
    with pytest.raises(ValueError, match="1000"):
        streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, b"\x01")])
    assert FrameFeature.objects.count() == 0


def test_coverage_counts_accepted_sample_times_of_the_video_once(session):
    video, model_version = session.video, session.model_version
    other = streaming.start_client_session(video=video, model_version=model_version)
    streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, vector(1))])
    # Two independent sessions agree on sample 0, so the trust layer accepts it (docs/trust.md).
    streaming.record_frame_features(other, [FrameSample(0, 1.0, vector(1))])
    assert selectors.coverage(video, model_version).covered_ms == ()  # stored pending: nothing judged yet
    settlement.settle_video(video, model_version)
    FrameFeature.objects.filter(session=session, sample_ms=1000).update(status=FrameFeature.Status.REJECTED)

    covered = selectors.coverage(video, model_version)
    assert (covered.covered_ms, covered.total) == ((0,), 3)
    assert covered.fraction == pytest.approx(1 / 3)
    assert selectors.coverage(video, make_model("c", active=False)).covered_ms == ()


def test_resuming_reopens_a_closed_session(session):
    streaming.close_client_session(session)
    again = streaming.start_client_session(
        video=session.video, model_version=session.model_version, resume_id=str(session.pk)
    )
    assert again.pk == session.pk
    assert again.state == ClientSession.State.ACTIVE


def test_a_new_session_of_a_quarantined_device_is_refused_from_its_hello_on(session):
    from inference.models import Contributor

    Contributor.objects.create(key="device:caught-device-1", quarantined_at=timezone.now())
    streaming.identify_client_session(session, backend="wasm", device_id="caught-device-1")
    assert ClientSession.objects.get(pk=session.pk).state == ClientSession.State.QUARANTINED
    with pytest.raises(AnalysisRefused, match="device was quarantined"):
        streaming.record_frame_features(session, [FrameSample(0, 1.0, vector(1))])
    assert not FrameFeature.objects.exists()


def test_a_feature_inserted_without_a_status_is_pending_not_trusted(session):
    """A new insert path that forgets the status must not store trusted features."""
    feature = FrameFeature.objects.create(
        video=session.video, model_version=session.model_version, session=session, sample_ms=0, vector=vector(1)
    )
    feature.refresh_from_db()
    assert feature.status == FrameFeature.Status.PENDING


def test_sockets_that_dropped_without_closing_give_their_samples_back(settings):
    """Issue 13, item 3: two anonymous sockets on different networks take every sample of a video and
    vanish without a close (a crash, a restart, a dropped network); later viewers must get the work back."""
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    settings.HYDRA_TRUST_REPLICAS = 2
    settings.HYDRA_TRUST_MIN_ASSIGNMENT = 4
    settings.HYDRA_TRUST_SESSION_STALE_SECONDS = 300
    make_model()
    video = make_ready_video(duration_ms=20_000)
    every_sample = list(range(0, 20_000, 1000))

    def open_from(ip: str) -> streaming.OpenedAnalysis:
        return streaming.open_analysis_session(
            slug=video.slug, user=None, ip_address=ip, user_agent="t", resume_id=None
        )

    squatters = [open_from("198.51.100.7"), open_from("203.0.113.9")]
    assert [sorted(s.assigned) for s in squatters] == [every_sample, every_sample]
    # While the squatters may still be working, a newcomer gets only the audit top-up.
    assert len(open_from("192.0.2.10").assigned) == 4
    ClientSession.objects.filter(pk__in=[s.session.pk for s in squatters]).update(
        last_seen_at=timezone.now() - timezone.timedelta(seconds=301)
    )
    honest = open_from("100.64.7.7")
    assert sorted(honest.assigned) == every_sample  # the squatters' samples came back
    swept = ClientSession.objects.filter(pk__in=[s.session.pk for s in squatters])
    assert set(swept.values_list("state", flat=True)) == {ClientSession.State.CLOSED}
    # A swept session that was only slow may still come back and deliver.
    resumed = streaming.open_analysis_session(
        slug=video.slug, user=None, ip_address="198.51.100.7", user_agent="t", resume_id=str(squatters[0].session.pk)
    )
    assert resumed.session.pk == squatters[0].session.pk
    assert ClientSession.objects.get(pk=resumed.session.pk).state == ClientSession.State.ACTIVE
