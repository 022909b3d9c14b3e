"""Storing browser features and reading coverage back (services and selectors, without a websocket)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inference import selectors, services
from inference.models import ClientSession, FrameFeature
from inference.protocol import FrameSample
from tests.inference.streaming_factories import FEATURES, make_model, make_ready_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(settings) -> ClientSession:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    model_version = make_model()
    return services.start_client_session(video=make_ready_video(), model_version=model_version)


def vector(fill: int) -> bytes:
    return bytes([fill]) * FEATURES


def test_a_batch_is_stored_in_one_statement(session):
    samples = [FrameSample(ms, 30.0, vector(ms // 1000)) for ms in (0, 1000, 2000)]
    with CaptureQueriesContext(connection) as queries:
        recorded = services.record_frame_features(session, samples)
    inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "inference_framefeature"')]
    assert len(inserts) == 1
    assert (recorded.accepted, recorded.duplicates) == ((0, 1000, 2000), ())
    assert FrameFeature.objects.filter(session=session).count() == 3


def test_a_vector_of_the_wrong_length_stores_nothing(session):
    with pytest.raises(ValueError, match="1000"):
        services.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, b"\x01")])
    assert FrameFeature.objects.count() == 0


def test_coverage_counts_accepted_sample_times_of_the_video_once(session):
    video, model_version = session.video, session.model_version
    other = services.start_client_session(video=video, model_version=model_version)
    services.record_frame_features(session, [FrameSample(0, 1.0, vector(1)), FrameSample(1000, 1.0, vector(1))])
    services.record_frame_features(other, [FrameSample(0, 1.0, vector(2))])
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
