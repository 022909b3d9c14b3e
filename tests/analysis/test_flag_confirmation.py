"""The nudity cascade in the live path: a flag backed by the server's own features opens a case only when nsfwjs's
InceptionV3, run by the server on frames it decoded itself, confirms it (inference.services.flag_confirmation).

Videos go through the site's upload and transcode; the server computes its features like for a flag or an unwatched
video; the confirmer is the real InceptionV3 except in the tests that say they replace it at the ML boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.db import transaction

from inference import selectors
from inference.ml import nsfw_confirm
from inference.models import ClientSession, ConfirmationScore, FrameFeature, HeadVersion, Recomputation, Verdict
from inference.services import analysis, flag_confirmation, server_features, settlement
from inference.trust import services as trust
from moderation.models import Case
from tests.trust import conftest as trust_fixtures
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)

# Videos uploaded and transcoded by the site's own services (with their coverage deadlines recorded, not run).
ready_video = trust_fixtures.ready_video
deadlines = trust_fixtures.deadlines


class CountingConfirmer:
    """Wraps a confirmer (the real one unless told otherwise) and records every frame it was asked to score."""

    def __init__(self, inner=None):
        self.inner = inner or flag_confirmation.CONFIRMERS["nsfwjs_inception_v3"]
        self.calls: list[tuple[str, list[int]]] = []

    def __call__(self, path: str, sample_ms: list[int]):
        self.calls.append((path, list(sample_ms)))
        return self.inner(path, sample_ms)


@pytest.fixture
def confirmer(monkeypatch) -> CountingConfirmer:
    counting = CountingConfirmer()
    monkeypatch.setitem(flag_confirmation.CONFIRMERS, "nsfwjs_inception_v3", counting)
    return counting


def server_computes_every_sample(video: Video, model_version) -> list[int]:
    """What the coverage deadline does for a video nobody watched: the server's own features at every sample."""
    times = selectors.expected_sample_times(video)
    features = server_features.compute_server_features(video, times, model_version)
    server_features.store_server_features(video, model_version, times, features)
    return times


def nudity_verdict(video: Video) -> Verdict:
    return Verdict.objects.get(video=video, head_version__head__category="nudity")


@pytest.mark.slow
def test_a_flag_the_confirmer_confirms_opens_a_case_with_its_segments_once(
    default_heads,
    model_version,
    ready_video,
    confirmer,
):
    """Skin-toned shapes (the demo's "Warm shapes"): the screen and InceptionV3 both score them above 0.9."""
    video = ready_video("warm", pattern="warm", seconds=4)
    times = server_computes_every_sample(video, model_version)
    settlement.analyse_and_announce(video, model_version)

    verdict = nudity_verdict(video)
    assert verdict.flagged and verdict.segments
    assert all(0 <= start < end <= video.duration_ms for start, end, _ in verdict.segments)
    confirm = verdict.stages["confirm"]
    assert confirm["status"] == flag_confirmation.CONFIRMED and confirm["segments"] == verdict.segments
    assert confirm["confirmer"] == "nsfwjs_inception_v3" and confirm["min_confirmed"] == 2
    assert len(confirm["frames"]) >= 2 and all(screen >= 0.7 and c >= 0.7 for _, screen, c in confirm["frames"])
    assert verdict.stages["screen"]["flagged"]
    # Only the screened frames, decoded from the rendition, in one batch.
    assert confirmer.calls == [(video.rendition.path, [ms for ms, *_ in confirm["frames"]])]
    assert {ms for ms, *_ in confirm["frames"]} <= set(times)
    case = Case.objects.get(video=video, category="nudity")
    assert case.verdict == verdict and case.status == Case.Status.OPEN

    # Idempotent: analysing again (coverage grew, a task retried) reuses the stored scores.
    settlement.analyse_and_announce(video, model_version)
    again = nudity_verdict(video)
    assert (again.flagged, again.segments, again.stages) == (verdict.flagged, verdict.segments, verdict.stages)
    assert len(confirmer.calls) == 1 and Case.objects.filter(video=video).count() == 1
    assert ConfirmationScore.objects.filter(video=video).count() == len(confirm["frames"])


@pytest.mark.slow
def test_a_screen_flag_the_confirmer_rejects_opens_no_case_and_says_why_even_after_a_quarantine(
    admin_client,
    default_heads,
    model_version,
    ready_video,
    confirmer,
    store_features,
):
    """The screen's false flag: the server's stored vectors flag every sample (they are the warm clip's), but the
    rendition is a calm gradient, and the confirmer judges the pixels the server decodes, not any vector."""
    calm = ready_video("calm", pattern="calm", seconds=4)
    warm = ready_video("warm", pattern="warm", seconds=4)
    times = selectors.expected_sample_times(calm)
    flagged_vectors = server_features.compute_server_features(warm, times, model_version)
    server_features.store_server_features(calm, model_version, times, flagged_vectors)
    settlement.analyse_and_announce(calm, model_version)

    verdict = nudity_verdict(calm)
    assert not verdict.flagged and verdict.segments == []
    assert verdict.stages["screen"]["flagged"] and verdict.stages["screen"]["segments"]
    confirm = verdict.stages["confirm"]
    assert confirm["status"] == flag_confirmation.NOT_CONFIRMED and confirm["segments"] == []
    assert [ms for ms, *_ in confirm["frames"]] == times
    assert all(screen >= 0.7 and c < 0.7 for _, screen, c in confirm["frames"])
    assert confirmer.calls == [(calm.rendition.path, times)]
    assert not Case.objects.filter(video=calm).exists()
    why = f"nsfwjs_inception_v3: not confirmed (0 of {len(times)} screened frames ≥ 0.70, 2 needed per segment)"
    assert selectors.stage_summary(verdict) == "screen: 1 segment · " + why
    listing = admin_client.get("/admin/inference/verdict/?flagged__exact=0").content.decode()
    assert why in listing and calm.title in listing

    # A viewer's session that sent features is quarantined: the video is analysed again, the verdict is the same,
    # still no case, and the confirmer does not run a second time.
    liar = store_features(calm, model_version, times, flagged_vectors)[0].session
    with transaction.atomic():  # as the verification that catches a liar runs
        settlement.queue_follow_ups(trust.quarantine_sessions([liar], "its features did not match"))
    assert FrameFeature.objects.filter(session=liar, status=FrameFeature.Status.REJECTED).count() == len(times)
    after = nudity_verdict(calm)
    assert after.computed_at > verdict.computed_at
    assert (after.flagged, after.stages["confirm"]) == (False, confirm)
    assert len(confirmer.calls) == 1 and not Case.objects.filter(video=calm).exists()


def test_a_liars_flag_never_reaches_the_confirmer(
    default_heads,
    model_version,
    ready_video,
    store_features,
    monkeypatch,
):
    """An outsider's attack: a viewer sends nudity-scoring vectors for a calm video. The flag first needs the
    server's own features (it computes them: not flagged), so the confirmer never runs, on any frame."""
    asked = CountingConfirmer(inner=lambda path, times: pytest.fail(f"the confirmer ran on {times}"))
    monkeypatch.setitem(flag_confirmation.CONFIRMERS, "nsfwjs_inception_v3", asked)
    calm = ready_video("calm", pattern="calm", seconds=4)
    warm = ready_video("warm", pattern="warm", seconds=4)
    times = selectors.expected_sample_times(calm)
    lies = server_features.compute_server_features(warm, times, model_version)
    liar = store_features(calm, model_version, times, lies)[0].session
    settlement.analyse_and_announce(calm, model_version)

    assert Recomputation.objects.filter(video=calm, reason=Recomputation.Reason.FLAG).exists()  # the lie flagged
    assert asked.calls == []
    assert not Case.objects.filter(video=calm).exists()
    verdict = nudity_verdict(calm)
    assert not verdict.flagged and "confirm" not in verdict.stages
    liar.refresh_from_db()
    assert liar.state == ClientSession.State.QUARANTINED


def broken_confirmer(path, times):
    raise nsfw_confirm.NsfwjsError("the confirmer could not load")


def confident_confirmer(path, times):
    return np.full(len(times), 0.99), [{"porn": 0.99}] * len(times)


@pytest.fixture
def pending_flag(default_heads, model_version, ready_video, monkeypatch) -> Video:
    """A video the server's own features flag, whose confirmation task failed (replaced at the ML boundary)."""
    monkeypatch.setitem(flag_confirmation.CONFIRMERS, "nsfwjs_inception_v3", broken_confirmer)
    video = ready_video("warm", pattern="warm", seconds=4)
    server_computes_every_sample(video, model_version)
    with pytest.raises(nsfw_confirm.NsfwjsError):
        settlement.analyse_and_announce(video, model_version)
    return video


def test_a_pending_confirmation_keeps_the_flag_open_and_a_failed_one_leaves_it_waiting(
    pending_flag, model_version, monkeypatch
):
    """While the confirmer has not answered, no case opens and the video is not cleared; the task's failure
    (a rendition that cannot be decoded) leaves the flag pending, never confirmed."""
    verdict = nudity_verdict(pending_flag)
    assert verdict.flagged and verdict.stages["confirm"]["status"] == flag_confirmation.PENDING
    assert all(c is None for _, _, c in verdict.stages["confirm"]["frames"])
    assert not Case.objects.filter(video=pending_flag).exists()
    assert not ConfirmationScore.objects.filter(video=pending_flag).exists()

    monkeypatch.setitem(flag_confirmation.CONFIRMERS, "nsfwjs_inception_v3", confident_confirmer)
    settlement.analyse_and_announce(pending_flag, model_version)
    assert nudity_verdict(pending_flag).stages["confirm"]["status"] == flag_confirmation.CONFIRMED
    assert Case.objects.filter(video=pending_flag, category="nudity").count() == 1


def test_a_settlement_pass_with_nothing_new_to_analyse_retries_a_pending_confirmation(
    pending_flag, model_version, monkeypatch
):
    """A confirmation left pending (its task failed, or the video's lock was busy) must not wait for a
    coverage step that may never come: the next settlement pass tries it again."""
    monkeypatch.setitem(flag_confirmation.CONFIRMERS, "nsfwjs_inception_v3", confident_confirmer)
    head_versions = selectors.active_head_versions(model_version)
    sample_times = selectors.expected_sample_times(pending_flag)
    assert not analysis.analysis_due(pending_flag, model_version, head_versions, sample_times)
    assert settlement.settle_video(pending_flag, model_version) == []
    assert nudity_verdict(pending_flag).stages["confirm"]["status"] == flag_confirmation.CONFIRMED
    assert Case.objects.filter(video=pending_flag, category="nudity").count() == 1

    settlement.settle_video(pending_flag, model_version)  # concluded: nothing more is queued or opened
    assert Case.objects.filter(video=pending_flag, category="nudity").count() == 1


def test_a_head_without_a_confirmer_needs_none_and_an_unknown_confirmer_is_refused(default_heads):
    nudity = HeadVersion.objects.get(head__category="nudity", is_active=True)
    assert flag_confirmation.confirmation_rule(nudity) == {"confirmer": "nsfwjs_inception_v3", "min_confirmed": 2}
    nudity.config = {**nudity.config, "confirm": {"confirmer": "someone_elses"}}
    with pytest.raises(ValueError, match="unknown confirmer 'someone_elses'"):
        flag_confirmation.confirmation_rule(nudity)
    del nudity.config["confirm"]
    assert flag_confirmation.confirmation_rule(nudity) is None
