"""What the admin's case page shows: everything needed to decide without leaving it.

Builds plain data (no HTTP) from the selectors: flagged segments to jump to, one score
timeline per category drawn as inline SVG geometry, the highest-scoring frames, the
verdicts, the reports and the video's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inference.models import Verdict
from inference.sampling import seek_time_seconds
from videos.models import Video
from videos.selectors import rendition_timing

from . import selectors, services
from .models import Case, Decision, PolicyReason
from .services import ACTION_VISIBILITY

CHART_WIDTH = 1000.0  # SVG viewBox units; the chart stretches to the column's width
CHART_HEIGHT = 56.0
MAX_TOP_FRAMES = 8


@dataclass
class Segment:
    category: str
    severity: int
    start_ms: int
    end_ms: int
    score: float
    seek_s: float


@dataclass
class Timeline:
    category: str
    label: str
    severity: int
    threshold: float
    score: float
    flagged: bool
    line: str  # SVG polyline points
    area: str  # SVG polygon points (the line closed to the baseline)
    threshold_y: float
    segments: list[tuple[float, float]] = field(default_factory=list)  # (x, width) shaded


@dataclass
class TopFrame:
    category: str
    sample_ms: int
    score: float
    seek_s: float


def _x(ms: float, duration_ms: int) -> float:
    return round(min(max(ms / duration_ms, 0.0), 1.0) * CHART_WIDTH, 1)


def _y(score: float) -> float:
    return round(CHART_HEIGHT - min(max(score, 0.0), 1.0) * CHART_HEIGHT, 1)


def _seek(video: Video, sample_ms: int) -> float:
    """Seek to the middle of the sampled frame, as the analysis does, so the player shows exactly that frame
    (the rendition's frame rate: it is what the player plays)."""
    fps, _ = rendition_timing(video)
    return round(seek_time_seconds(sample_ms, fps), 3) if fps else sample_ms / 1000


def _timeline(video: Video, verdict: Verdict, scores: list[tuple[int, float]]) -> Timeline:
    _, duration_ms = rendition_timing(video)
    duration = max(duration_ms or 1, 1)
    points = [(_x(ms, duration), _y(score)) for ms, score in scores]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"{points[0][0]},{CHART_HEIGHT} {line} {points[-1][0]},{CHART_HEIGHT}" if points else ""
    head = verdict.head_version.head
    return Timeline(
        category=head.category,
        label=head.label,
        severity=head.severity,
        threshold=verdict.threshold,
        score=verdict.score,
        flagged=verdict.flagged,
        line=line,
        area=area,
        threshold_y=_y(verdict.threshold),
        segments=[
            (_x(start, duration), max(_x(end, duration) - _x(start, duration), 2.0))
            for start, end, *_ in verdict.segments
        ],
    )


def _segments(video: Video, verdicts: list[Verdict]) -> list[Segment]:
    segments = [
        Segment(
            category=v.head_version.head.category,
            severity=v.head_version.head.severity,
            start_ms=int(start),
            end_ms=int(end),
            score=float(rest[0]) if rest else v.score,
            seek_s=_seek(video, int(start)),
        )
        for v in verdicts
        if v.flagged
        for start, end, *rest in v.segments
    ]
    return sorted(segments, key=lambda s: s.start_ms)


def _top_frames(video: Video, case: Case, verdicts: list[Verdict]) -> list[TopFrame]:
    """The case's own category first, then other flagged categories; one frame per sample time."""
    ranked = sorted(
        verdicts,
        key=lambda v: (v.head_version.head.category != case.category, not v.flagged, -v.score),
    )
    frames: list[TopFrame] = []
    seen: set[int] = set()
    for verdict in ranked:
        for sample_ms, score, *_ in verdict.top_frames:
            if int(sample_ms) in seen or len(frames) >= MAX_TOP_FRAMES:
                continue
            seen.add(int(sample_ms))
            frames.append(
                TopFrame(verdict.head_version.head.category, int(sample_ms), float(score), _seek(video, int(sample_ms)))
            )
    return frames


def _reversible(decisions: list[Decision]) -> set[int]:
    reversed_ids = {d.reverses_id for d in decisions if d.reverses_id}
    return {d.pk for d in decisions if d.action in ACTION_VISIBILITY and d.pk not in reversed_ids}


def build_case_page(case: Case, user) -> dict:
    video = case.video
    verdicts = list(selectors.verdicts_for(video))
    history = list(selectors.case_history(video, exclude=case))
    decisions = list(case.decisions.select_related("policy_reason", "moderator", "reverses"))
    all_decisions = decisions + [d for other in history for d in other.decisions.all()]
    reasons = list(PolicyReason.objects.filter(is_active=True))
    return {
        "case": case,
        "video": video,
        "duration_ms": rendition_timing(video)[1],
        "segments": _segments(video, verdicts),
        "timelines": [_timeline(video, v, scores) for v, scores in selectors.score_series(video, verdicts) if scores],
        "top_frames": _top_frames(video, case, verdicts),
        "verdicts": verdicts,
        "reports": list(case.reports.select_related("reporter")),
        "other_reports": list(video.reports.exclude(case=case).select_related("reporter")[:20]),
        "appeal": getattr(case, "appeal", None) if case.source == Case.Source.APPEAL else None,
        "decisions": decisions,
        "history": history,
        "audit": list(selectors.audit_trail(video=video, case=case)[:50]),
        "clearing_reasons": [r for r in reasons if not r.is_violation],
        "violation_reasons": [r for r in reasons if r.is_violation],
        "suggested_reason": next((r.pk for r in reasons if r.is_violation and r.category == case.category), None),
        "reversible_ids": _reversible(all_decisions) if user.has_perm("moderation.reverse_decision") else set(),
        "can_decide": case.is_active
        and (case.status != Case.Status.ESCALATED or user.has_perm("moderation.decide_escalated")),
        "is_mine": case.assignee_id == user.pk,
        "work_refusal": services.work_refusal(case, user) if case.is_active else None,
    }
