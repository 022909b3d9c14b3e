"""The trust services on the database: assignment, verification, quarantine, flags and the coverage deadline.

Features are stored the way ``record_frame_features`` stores them and then handed to the trust
hook, so these tests need no websocket; the server's own features come from the real Keras CNN.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from inference import selectors
from inference.ml.quantise import quantise
from inference.models import ClientSession, Contributor, FrameFeature, Recomputation, Verdict
from inference.services import settlement
from inference.services.server_features import compute_server_features
from inference.trust import contributors, verification
from inference.trust import services as trust
from inference.trust.tasks import cover_video
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


def session_for(video, model_version, name: str, *, ip: str, user=None) -> ClientSession:
    return ClientSession.objects.create(
        video=video, model_version=model_version, device_id=f"device-{name}", ip_address=ip, backend="wasm", user=user
    )


def record(session: ClientSession, times: list[int], features: np.ndarray) -> None:
    """What a batch goes through: stored pending (record_frame_features), then judged by a settlement pass."""
    codes = quantise(features)
    with transaction.atomic():
        FrameFeature.objects.bulk_create(
            FrameFeature(
                video_id=session.video_id,
                model_version_id=session.model_version_id,
                session=session,
                sample_ms=t,
                vector=codes[i].tobytes(),
                backend=session.backend,
                status=FrameFeature.Status.PENDING,
            )
            for i, t in enumerate(times)
        )
        settlement.queue_follow_ups(trust.verify_pending(session.video, session.model_version))


def statuses(session: ClientSession) -> set[str]:
    return set(FrameFeature.objects.filter(session=session).values_list("status", flat=True))


@pytest.fixture
def video(ready_video, nudity_head) -> Video:
    return ready_video("clip", pattern="erratic", seed=2)


@pytest.fixture
def server_truth(video, model_version):
    times = selectors.expected_sample_times(video)
    return times, compute_server_features(video, times, model_version)


def establish(*sessions: ClientSession, record_length: int = 500) -> None:
    """Long clean records, earned over a year (a record grows no faster than its age allows)."""
    for session in sessions:
        contributor, _ = Contributor.objects.update_or_create(
            key=contributors.record_key(session), defaults={"consecutive_valid": record_length}
        )
        Contributor.objects.filter(pk=contributor.pk).update(created_at=timezone.now() - timedelta(days=365))


def test_assignment_is_persisted_independent_and_handed_on_when_a_session_leaves(video, model_version, settings):
    settings.HYDRA_TRUST_MIN_ASSIGNMENT = 0
    times = selectors.expected_sample_times(video)
    uploader = session_for(video, model_version, "owner", ip="10.0.0.1", user=video.owner)
    first = session_for(video, model_version, "a", ip="10.0.1.1")
    same_network = session_for(video, model_version, "b", ip="10.0.1.2")
    second = session_for(video, model_version, "c", ip="10.0.2.1")
    assert trust.assign_samples(uploader, times) == []  # never counts towards the quorum
    assert trust.assign_samples(first, times) == times
    assert trust.assign_samples(same_network, times) == []  # adds no independence
    assert trust.assign_samples(second, times) == times
    assert trust.assign_samples(second, times) == times  # stable on reconnect
    # `second` leaves having sent only the first sample: the rest goes to the next independent session.
    record(second, times[:1], np.random.default_rng(0).uniform(0, 6, (1, model_version.feature_size)))
    ClientSession.objects.filter(pk=second.pk).update(state=ClientSession.State.CLOSED)
    trust.release_unfinished_assignments([second.pk])
    newcomer = session_for(video, model_version, "d", ip="10.0.3.1")
    assert trust.assign_samples(newcomer, times) == times[1:]


def test_agreeing_sessions_are_accepted_and_a_liar_is_quarantined_with_everything_it_sent(
    video, model_version, server_truth, seeded_spot_checks, settings
):
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0  # long records: spot checks practically never drawn here
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0  # two viewers are a small audience (test_small_audience); not here
    times, truth = server_truth
    honest = [session_for(video, model_version, n, ip=f"10.0.{i}.1") for i, n in enumerate(("a", "b"))]
    liar = session_for(video, model_version, "liar", ip="10.9.9.9")
    establish(*honest, liar)  # even a liar with a long clean record is caught by disagreement
    rng = np.random.default_rng(1)
    for session in honest:
        record(session, times, np.clip(truth + rng.normal(0, 0.01, truth.shape), 0, 6).astype(np.float32))
    assert all(statuses(s) == {"accepted"} for s in honest)
    assert not Recomputation.objects.exists()
    record(liar, times[:2], np.zeros((2, truth.shape[1]), dtype=np.float32))

    liar.refresh_from_db()
    assert liar.state == ClientSession.State.QUARANTINED
    assert statuses(liar) == {"rejected"}
    assert Contributor.objects.get(key=contributors.contributor_key(liar)).quarantined_at is not None
    assert all(statuses(s) == {"accepted"} for s in honest)
    assert set(Recomputation.objects.values_list("reason", flat=True)) == {"dispute"}
    assert Recomputation.objects.filter(done_at__isnull=True).count() == 0
    # Honest records grew with the server's verification (once for the video, however many samples
    # it checked); later messages of the liar are refused.
    assert Contributor.objects.get(key=contributors.record_key(honest[0])).consecutive_valid == 501
    assert "quarantined" in contributors.refusal_reason(liar)
    later = session_for(video, model_version, "liar", ip="10.9.9.10")  # same device, new session
    assert trust.assign_samples(later, times) == []


def test_colluding_newcomers_cannot_get_a_lie_accepted(
    video, model_version, server_truth, nudity_head, seeded_spot_checks
):
    from tests.trust.harness import crafted_toward

    times, truth = server_truth
    pair = [session_for(video, model_version, n, ip=f"10.1.{i}.1") for i, n in enumerate(("p", "q"))]
    lie = np.stack([crafted_toward(nudity_head, v, ("porn",)) for v in truth])
    for session in pair:
        record(session, times, lie)  # they agree with each other perfectly

    for session in pair:
        session.refresh_from_db()
        assert session.state == ClientSession.State.QUARANTINED
        assert statuses(session) == {"rejected"}
    assert set(Recomputation.objects.values_list("reason", flat=True)) <= {"spot_check", "quarantine"}
    # The server's own features replaced theirs: the video is covered on the truth only.
    accepted = FrameFeature.objects.filter(video=video, status=FrameFeature.Status.ACCEPTED)
    assert set(accepted.values_list("session__is_server", flat=True)) == {True}
    assert accepted.count() == len(times)


def test_a_flag_waits_for_the_server_to_compute_the_flagged_frames(video, model_version, server_truth):
    times, _ = server_truth
    verdict = Verdict(video=video, model_version=model_version, segments=[[times[1], times[2], 0.9]])
    with transaction.atomic():
        confirmed, follow_ups = trust.confirm_flag_with_server(verdict, times)
        assert confirmed is False
        settlement.queue_follow_ups(follow_ups)
    reasons = Recomputation.objects.values_list("sample_ms", "reason")
    assert sorted(reasons) == [(times[1], "flag"), (times[2], "flag")]
    assert trust.confirm_flag_with_server(verdict, times) == (
        True,
        verification.FollowUps(),
    )  # the eager task computed them


def test_unwatched_video_is_covered_by_the_server(video, model_version):
    expected = len(selectors.expected_sample_times(video))
    assert expected == 4 and len(selectors.coverage(video, model_version).covered_ms) == 0
    cover_video.delay(video.pk)
    assert len(selectors.coverage(video, model_version).covered_ms) == expected
    assert Verdict.objects.filter(video=video, coverage=1.0).exists()
    assert set(Recomputation.objects.filter(video=video).values_list("reason", flat=True)) == {"coverage"}


def test_the_server_starts_early_enough_to_cover_every_sample_by_the_deadline(settings):
    settings.HYDRA_TRUST_COVERAGE_SLACK_SECONDS = 60
    settings.HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE = 0.5
    # Started early enough for the server to compute all 100 samples itself by the deadline.
    assert trust.coverage_countdown_seconds(100, 600) == 600 - 60 - 50
    assert trust.coverage_countdown_seconds(10_000, 600) == 0
    assert trust.coverage_countdown_seconds(100, 0) == 0  # due now (a held video)
    assert trust.coverage_countdown_seconds(100, -30) == 0  # overdue


def test_new_video_starts_its_deadline(ready_video, deadlines):
    clip = ready_video("another", pattern="bars")
    assert deadlines.started == [clip.pk]
    assert get_user_model().objects.filter(pk=clip.owner_id).exists()


def test_a_held_upload_is_covered_by_the_server_at_once(ready_video, deadlines, model_version, settings):
    """Uploaded under the hold policy: no browser can reach it, so it is due when ready and the server covers it."""
    settings.HYDRA_PUBLICATION_POLICY = "hold"
    clip = ready_video("held", pattern="bars")
    assert clip.visibility == Video.Visibility.HELD
    assert deadlines.due[clip.pk] <= timezone.now()
    deadlines.schedule(clip, deadlines.due[clip.pk])  # what the receiver does, here with in-process tasks
    assert len(selectors.coverage(clip, model_version).covered_ms) == len(selectors.expected_sample_times(clip))


def test_an_honest_gpu_browser_is_never_quarantined_even_where_it_strays_beyond_tolerance(
    ready_video, model_version, feature_extractor, nudity_head, seeded_spot_checks
):
    """GPU chroma filtering strays far on small sharp frames; the server recognises that painting before judging."""
    from inference.ml import cnn
    from inference.trust import paintings
    from inference.trust.agreement import compare_to_reference

    clip = ready_video("sharp", pattern="bars", seed=3)
    times = selectors.expected_sample_times(clip)
    path = clip.rendition.path
    truth = cnn.compute_features(feature_extractor, paintings.painted_frames(path, times, "chromium-software"))
    gpu = cnn.compute_features(feature_extractor, paintings.painted_frames(path, times, "gpu-bilinear-chroma"))
    tolerance = verification.configured_tolerance()
    strays = [
        not c.within(tolerance)
        for c in (
            compare_to_reference(quantise(t) * (6 / 255), quantise(g)[None] * (6 / 255), nudity_head.predict)[0]
            for t, g in zip(truth, gpu, strict=True)
        )
    ]
    assert any(strays), "precondition: this clip must show the GPU painting beyond the plain tolerance"

    software = session_for(clip, model_version, "software", ip="10.2.0.1")
    gpu_session = session_for(clip, model_version, "gpu", ip="10.2.1.1")
    record(software, times, truth)
    record(gpu_session, times, gpu)

    gpu_session.refresh_from_db()
    assert gpu_session.state != ClientSession.State.QUARANTINED
    assert statuses(gpu_session) == {"accepted"} and statuses(software) == {"accepted"}
    assert "dispute" in set(Recomputation.objects.values_list("reason", flat=True))


def test_in_process_tasks_cover_only_videos_due_now(video, deadlines):
    """The embedded default runs tasks eagerly: a countdown cannot be waited for, a video due now cannot wait."""
    model_version = selectors.active_model_version()
    deadlines.schedule(video, timezone.now() + timedelta(seconds=900))
    assert len(selectors.coverage(video, model_version).covered_ms) == 0
    deadlines.schedule(video, timezone.now())
    assert len(selectors.coverage(video, model_version).covered_ms) == len(selectors.expected_sample_times(video))
