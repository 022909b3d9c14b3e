"""Flag confirmation: a larger network, run by the server, confirms a head's flag before a case opens.

The cheap head is a screen. Once the server's own features have confirmed a flag
(``trust.confirm_flag_with_server``), a head whose version names a confirmer (``config["confirm"]``, the
nudity head out of the box: nsfwjs's InceptionV3) has its flag checked once more, in the settlement pass:

1. the frames to confirm are the samples inside the screen's segments that the screen flagged on the
   **server's own** features (a client's vector never chooses a frame);
2. the confirmer scores them on pixels the server decodes itself from the rendition (browser-exact RGB,
   ``inference.ml.nsfw_confirm.confirm_frames_at``), in a Celery task (``score_flagged_frames``), batched,
   each frame once per video (``ConfirmationScore``), so analysing the video again costs no second run;
3. a segment stands when ``min_confirmed`` of its screened samples reach the head's threshold there too
   (``inference.ml.nudity_cascade``). The verdict keeps what each stage said (``Verdict.stages``): a flag
   the confirmer did not confirm is stored as not flagged, with the screen's segments and both scores per
   frame, so a moderator or an admin sees why no case opened.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction

from inference import signals
from inference.ml import nsfw_confirm
from inference.ml.nsfwjs import CLASS_NAMES
from inference.ml.nudity_cascade import DEFAULT_MIN_CONFIRMED, confirmed_segments, frames_to_confirm
from inference.models import ConfirmationScore, FrameFeature, FrameScore, HeadVersion, Verdict
from videos.models import Video

CONFIRMED, NOT_CONFIRMED, PENDING = "confirmed", "not confirmed", "pending"

# Frames decoded and scored at a time (a 720p frame is about 2.8 MB decoded).
SCORING_CHUNK = 32


def _nsfwjs_inception_v3(path: str, sample_ms: list[int]) -> tuple[np.ndarray, list[dict[str, float]]]:
    probabilities = nsfw_confirm.confirm_frames_at(settings.HYDRA_NSFWJS_DIR, path, sample_ms)
    classes = [{name: round(float(p), 5) for name, p in zip(CLASS_NAMES, row, strict=True)} for row in probabilities]
    return nsfw_confirm.nudity_scores(probabilities), classes


# name (config["confirm"]["confirmer"]) -> (rendition path, sample times) -> (scores, per-class probabilities)
CONFIRMERS: dict[str, Callable[[str, list[int]], tuple[np.ndarray, list[dict[str, float]]]]] = {
    "nsfwjs_inception_v3": _nsfwjs_inception_v3,
}


def confirmation_rule(head_version: HeadVersion) -> dict | None:
    """The head version's confirmation settings, or None when its flags need no confirmation."""
    rule = head_version.config.get("confirm")
    if not rule:
        return None
    if rule.get("confirmer") not in CONFIRMERS:
        raise ValueError(f"{head_version}: unknown confirmer {rule.get('confirmer')!r}; known: {sorted(CONFIRMERS)}")
    return {"confirmer": rule["confirmer"], "min_confirmed": int(rule.get("min_confirmed", DEFAULT_MIN_CONFIRMED))}


def _screen_segments(verdict: Verdict) -> list[list[float]]:
    return verdict.stages.get("screen", {}).get("segments", verdict.segments)


def _screened_frames(verdict: Verdict) -> dict[int, float]:
    """Sample time -> screen score of the frames to confirm: flagged by the screen on the server's own features.

    The analysis scores the server's vector wherever the server computed one (``selectors.accepted_features``),
    so restricting to those times makes the screen's scores the server's: no client can choose a frame.
    """
    server_times = set(
        FrameFeature.objects.filter(
            video_id=verdict.video_id, model_version_id=verdict.model_version_id, session__is_server=True
        ).values_list("sample_ms", flat=True)
    )
    spans = [(float(start), float(end)) for start, end, *_ in _screen_segments(verdict)]
    rows = [
        (ms, score)
        for ms, score in FrameScore.objects.filter(video_id=verdict.video_id, head_version_id=verdict.head_version_id)
        .order_by("sample_ms")
        .values_list("sample_ms", "score")
        if ms in server_times and any(start <= ms < end for start, end in spans)
    ]
    times = frames_to_confirm([ms for ms, _ in rows], [score for _, score in rows], verdict.threshold)
    screen = dict(rows)
    return {ms: screen[ms] for ms in times}


def _stored_scores(video_id: int, confirmer: str, times: Sequence[int]) -> dict[int, float]:
    return dict(
        ConfirmationScore.objects.filter(video_id=video_id, confirmer=confirmer, sample_ms__in=list(times)).values_list(
            "sample_ms", "score"
        )
    )


def awaiting_confirmation(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The flagged verdicts whose confirmation has not concluded (no confirm stage yet, or pending)."""
    return [
        verdict
        for verdict in verdicts
        if verdict.flagged
        and confirmation_rule(verdict.head_version) is not None
        and verdict.stages.get("confirm", {}).get("status", PENDING) == PENDING
    ]


def confirm_flag(verdict: Verdict) -> bool:
    """True when the flag of this verdict (already backed by the server's features) stands and a case may open.

    No confirmer for its head: it stands. Otherwise the confirmer's stored scores decide; the verdict is
    rewritten with the segments that stand (none: not flagged) and the confirm stage. Frames not scored
    yet are queued (``flag_confirmation_requested``) and the flag waits (False, stage ``pending``): the
    analysis that follows the scoring decides. Reads the verdict again under the video's lock, so it
    always judges the latest analysis.
    """
    rule = confirmation_rule(verdict.head_version)
    if rule is None:
        return True
    with transaction.atomic():
        # Waits for the lock: a refusal here would leave the flag pending with no pass to retry it.
        Video.objects.select_for_update().filter(pk=verdict.video_id).first()
        current = Verdict.objects.select_related("head_version").get(pk=verdict.pk)
        if not current.stages.get("screen", {}).get("flagged", current.flagged):
            return False
        screened = _screened_frames(current)
        scores = _stored_scores(current.video_id, rule["confirmer"], list(screened))
        missing = sorted(set(screened) - set(scores))
        screen_segments = _screen_segments(current)
        kept = confirmed_segments(
            [tuple(segment) for segment in screen_segments], scores, current.threshold, rule["min_confirmed"]
        )
        status = PENDING if missing else (CONFIRMED if kept else NOT_CONFIRMED)
        stage = {
            **rule,
            "threshold": current.threshold,
            "status": status,
            "frames": [[ms, round(screen, 4), _rounded(scores.get(ms))] for ms, screen in screened.items()],
            "segments": [list(segment) for segment in kept],
        }
        current.stages = {**current.stages, "confirm": stage}
        if status != PENDING:
            current.flagged, current.segments = bool(kept), stage["segments"]
        current.save(update_fields=["flagged", "segments", "stages", "computed_at"])
        if missing:
            transaction.on_commit(
                functools.partial(
                    signals.flag_confirmation_requested.send,
                    sender=Verdict,
                    video_id=current.video_id,
                    head_version_id=current.head_version_id,
                )
            )
    verdict.flagged, verdict.segments, verdict.stages = current.flagged, current.segments, current.stages
    return status == CONFIRMED


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


def score_flagged_frames(video: Video, head_version: HeadVersion) -> list[int]:
    """The confirmer scores the verdict's screened frames it has not scored yet (the heavy part, in a worker).

    Decodes them from the video's rendition and runs the confirmer in batches; returns the times scored.
    Safe to run twice: frames already scored are skipped, and a concurrent run's rows are kept.
    """
    rule = confirmation_rule(head_version)
    verdict = Verdict.objects.filter(video=video, head_version=head_version).first()
    if rule is None or verdict is None:
        return []
    screened = _screened_frames(verdict)
    missing = sorted(set(screened) - set(_stored_scores(video.pk, rule["confirmer"], list(screened))))
    if not missing:
        return []
    if not video.rendition:
        raise ValueError(f"video {video.pk} has no rendition to confirm its flag on")
    # In chunks: a long video flagged throughout would otherwise hold every decoded frame at once, and
    # what a chunk stored survives a worker that dies on the next.
    for start in range(0, len(missing), SCORING_CHUNK):
        chunk = missing[start : start + SCORING_CHUNK]
        scores, classes = CONFIRMERS[rule["confirmer"]](video.rendition.path, chunk)
        ConfirmationScore.objects.bulk_create(
            [
                ConfirmationScore(
                    video=video,
                    confirmer=rule["confirmer"],
                    sample_ms=ms,
                    score=float(np.clip(scores[index], 0.0, 1.0)),
                    class_scores=classes[index],
                )
                for index, ms in enumerate(chunk)
            ],
            ignore_conflicts=True,
        )
    return missing
