"""The mixed-run scenario shared by the in-process and the live simulations (and bench/).

Three clips, each watched twice: by honest viewers only, and by the same number of honest
viewers plus liars of every kind (a colluding pair among them). ``check_outcome`` asserts what
issue 6 asks for and returns the figures docs/trust.md reports.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.utils import timezone

from inference.models import ClientSession, Contributor, FrameFeature, Head, Recomputation, Verdict
from inference.trust import contributors, verification
from inference.trust.agreement import compare_to_reference
from tests.trust import harness
from tests.trust.harness import Behaviour, Viewer

# (title, pattern, seed): erratic seed 5 has frames the nudity head scores near 0.4, the others stay below 0.15.
CLIPS = (("bars", "bars", 3), ("erratic", "erratic", 5), ("calm", "calm", 3))
HONEST_PER_VIDEO = 6
MIN_GAP = 0.02  # nudity-score margin between a threshold and every frame, on every browser profile
ESTABLISHED_RECORD = 500  # returning honest viewers: past probation, at the spot-check floor
ESTABLISHED_AGE = timedelta(days=365)


def make_runs(ready_video) -> dict[str, dict]:
    """The clips uploaded twice, for the all-honest and the mixed run: {run: {title: Video}}."""
    return {
        run: {title: ready_video(f"{run}-{title}", pattern=pattern, seed=seed) for title, pattern, seed in CLIPS}
        for run in ("honest", "mixed")
    }


def honest_viewers(prefix: str, count: int, network: int) -> list[Viewer]:
    """Honest viewers cycling over every browser profile, each on its own /24, with an established record."""
    profiles = itertools.cycle(harness.BROWSER_PROFILES)
    viewers = [
        Viewer(
            name=f"{prefix}-honest-{i}",
            behaviour=Behaviour.HONEST,
            profile=next(profiles),
            device_id=f"{prefix}honest{i:04d}",
            ip=f"10.{network}.{i}.7",
        )
        for i in range(count)
    ]
    establish_viewers(viewers)
    return viewers


def establish_viewers(viewers: list[Viewer]) -> None:
    """Give these viewers' records (their networks') a long history of server-verified results, earned over time."""
    keys = [contributors.record_key_of(ip=viewer.ip, device_id=viewer.device_id) for viewer in viewers]
    for key in keys:
        Contributor.objects.update_or_create(key=key, defaults={"consecutive_valid": ESTABLISHED_RECORD})
    Contributor.objects.filter(key__in=keys).update(created_at=timezone.now() - ESTABLISHED_AGE)


def malicious_viewers(prefix: str, network: int) -> list[Viewer]:
    """One new liar of every kind, plus a colluding pair that sends the same lie from two networks."""
    liars = [b for b in harness.MALICIOUS if b is not Behaviour.COLLUDER] + [Behaviour.COLLUDER, Behaviour.COLLUDER]
    return [
        Viewer(
            name=f"{prefix}-{behaviour}-{i}",
            behaviour=behaviour,
            device_id=f"{prefix}liar{i:04d}",
            ip=f"10.{network}.{100 + i}.9",
            seed="pair" if behaviour is Behaviour.COLLUDER else f"{prefix}-{i}",
        )
        for i, behaviour in enumerate(liars)
    ]


def audiences(titles: list[str], prefix: str, *, with_liars: bool) -> dict[str, list[Viewer]]:
    """Who watches which video; liars are spread over the videos and the colluding pair watches the same one."""
    liars = malicious_viewers(f"{prefix}x", 90) if with_liars else []
    result = {}
    for i, title in enumerate(titles):
        mine = [v for k, v in enumerate(liars) if k % len(titles) == i and v.behaviour is not Behaviour.COLLUDER]
        if i == 1:
            mine += [v for v in liars if v.behaviour is Behaviour.COLLUDER]
        result[title] = honest_viewers(f"{prefix}{i}", HONEST_PER_VIDEO, 30 + i + (10 if with_liars else 0)) + mine
    return result


def set_unambiguous_threshold(truths: dict[str, harness.VideoTruth], head) -> float:
    """A nudity threshold with every frame's score, on every browser profile, well away from it.

    Verdicts can only be compared when no honest backend difference decides them. The threshold
    sits in the widest gap between frames' score ranges, preferring one that leaves a video
    entirely below it, so that both outcomes (flagged and cleared) are compared.
    """
    positive = [head.class_names.index(c) for c in ("porn", "hentai")]
    ranges, highest_by_video = [], []
    for truth in truths.values():
        scores = np.stack(
            [head.predict(harness.wire_roundtrip(f))[:, positive].sum(1) for f in truth.by_profile.values()]
        )
        ranges += list(zip(scores.min(0), scores.max(0), strict=True))
        highest_by_video.append(scores.max())
    ranges.sort()
    gaps = [(low - high, (low + high) / 2) for (_, high), (low, _) in itertools.pairwise(ranges) if low > high]
    clearing = [gap for gap in gaps if gap[0] >= MIN_GAP and gap[1] > min(highest_by_video)]
    _, threshold = max(clearing or gaps)
    Head.objects.filter(category="nudity").update(threshold=threshold)
    return threshold


@dataclass
class RunResult:
    viewers: list[Viewer]
    verdicts: dict[str, tuple[bool, list, float, float]]
    server_frames: int
    samples: int
    reasons: list[str]
    accepted_client_features: int


def summarise(videos: dict, truths: dict[str, harness.VideoTruth], viewers: dict[str, list[Viewer]]) -> RunResult:
    """The final verdicts and what the server had to compute."""
    verdicts = {}
    for title, video in videos.items():
        verdict = Verdict.objects.get(video=video, head_version__head__category="nudity")
        verdicts[title] = (verdict.flagged, verdict.segments, verdict.score, verdict.coverage)
    features = FrameFeature.objects.filter(video__in=videos.values())
    return RunResult(
        viewers=[v for vs in viewers.values() for v in vs],
        verdicts=verdicts,
        server_frames=features.filter(session__is_server=True).count(),
        samples=sum(len(truths[t].times) for t in videos),
        reasons=sorted(Recomputation.objects.filter(video__in=videos.values()).values_list("reason", flat=True)),
        accepted_client_features=features.filter(session__is_server=False, status=FrameFeature.Status.ACCEPTED).count(),
    )


def _told_detectable_lie(viewer: Viewer, truths: dict[str, harness.VideoTruth], tolerance, head) -> bool:
    """Whether anything the viewer got stored lies outside the tolerance around every honest painting of the frame."""
    truth = truths[viewer.video]
    others = [t for t in truths.values() if t is not truth]
    for t in viewer.accepted:
        sent = harness.dequantise(np.frombuffer(viewer.features(truth, t, others, head), dtype=np.uint8))
        references = [harness.wire_roundtrip(painted[truth.index(t)]) for painted in truth.by_profile.values()]
        if not any(compare_to_reference(r, sent[None, :], head.predict)[0].within(tolerance) for r in references):
            return True
    return False


def _what_happened(viewer: Viewer) -> list:
    """For a failure message: the viewer's stored features and the server's work on those samples."""
    rows = FrameFeature.objects.filter(session_id=viewer.session_id).values_list("video_id", "sample_ms", "status")
    return [
        (t, status, list(Recomputation.objects.filter(video_id=v, sample_ms=t).values_list("reason", "done_at")))
        for v, t, status in rows
    ]


def check_outcome(honest: RunResult, mixed: RunResult, mixed_videos: dict, truths, head, min_assignment: int) -> dict:
    """Assert the "Done when" of issue 6 on two finished runs; return the figures."""
    state = {str(s.pk): s.state for s in ClientSession.objects.filter(is_server=False)}
    honest_sessions = [v for v in mixed.viewers + honest.viewers if not v.malicious]
    liars = [v for v in mixed.viewers if v.malicious]
    assert all(v.session_id for v in mixed.viewers), [v.errors for v in mixed.viewers if not v.session_id]
    assert all(len(v.assigned) >= min_assignment for v in mixed.viewers)

    # No honest session quarantined, whatever its browser profile.
    assert [v.name for v in honest_sessions if state[v.session_id] == ClientSession.State.QUARANTINED] == []
    # Every liar that told a detectable lie is quarantined (a "lie" within tolerance of an honest painting is none).
    tolerance = verification.configured_tolerance()
    by_slug = {
        mixed_videos[t].slug: dataclasses.replace(truth, slug=mixed_videos[t].slug) for t, truth in truths.items()
    }
    detectable = [v for v in liars if _told_detectable_lie(v, by_slug, tolerance, head)]
    caught = [v for v in detectable if state[v.session_id] == ClientSession.State.QUARANTINED]
    missed = [v for v in detectable if v not in caught]
    assert len(caught) >= 0.99 * len(detectable), [(v.name, _what_happened(v)) for v in missed]
    assert len(detectable) >= len(liars) - 2  # a crafted lie is a no-op only on frames that already say it

    # Nothing a liar sent is accepted (colluders included); every accepted feature matches an honest painting.
    assert not FrameFeature.objects.filter(
        session_id__in=[v.session_id for v in liars], status=FrameFeature.Status.ACCEPTED
    ).exists()
    for title, video in mixed_videos.items():
        truth = truths[title]
        for feature in FrameFeature.objects.filter(video=video, status=FrameFeature.Status.ACCEPTED):
            vector = harness.dequantise(np.frombuffer(bytes(feature.vector), dtype=np.uint8))
            references = [harness.wire_roundtrip(p[truth.index(feature.sample_ms)]) for p in truth.by_profile.values()]
            assert any(
                compare_to_reference(r, vector[None, :], head.predict)[0].within(tolerance) for r in references
            ), (title, feature.sample_ms, feature.session_id)

    # Every verdict equals the all-honest verdict, at full coverage; nothing is left for the server to do.
    for title in truths:
        (h_flag, h_segments, _, h_cov), (m_flag, m_segments, _, m_cov) = honest.verdicts[title], mixed.verdicts[title]
        assert (m_flag, m_segments) == (h_flag, h_segments), title
        assert m_cov == h_cov == 1.0, title
    assert not Recomputation.objects.filter(done_at__isnull=True).exists()
    return {
        "samples": mixed.samples,
        "honest_run_server_frames": honest.server_frames,
        "mixed_run_server_frames": mixed.server_frames,
        "malicious_sessions": len(liars),
        "detectable": len(detectable),
        "quarantined": len(caught),
        "honest_sessions": len(honest_sessions),
        "honest_quarantined": 0,
        "flagged": [t for t, v in mixed.verdicts.items() if v[0]],
        "scores": {t: round(v[2], 3) for t, v in mixed.verdicts.items()},
        "honest_reasons": honest.reasons,
        "mixed_reasons": mixed.reasons,
        "accepted_client_features": [honest.accepted_client_features, mixed.accepted_client_features],
    }
