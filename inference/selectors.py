"""Queries about inference state. Read-only; state changes live in inference.services."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import caches
from django.urls import reverse

from inference.ml.artefacts import ArtefactError, Artefacts, read_artefacts
from inference.ml.export import MODEL_JSON
from inference.models import ClientSession, FrameFeature, Head, HeadVersion, ModelVersion, Verdict
from inference.sampling import sample_times_ms
from inference.trust.contributors import record_key_of
from videos.models import Video
from videos.selectors import rendition_timing

# --- Model registry ------------------------------------------------------------------------------


def active_model_version() -> ModelVersion | None:
    """The model version new sessions get."""
    return ModelVersion.objects.filter(is_active=True).first()


def model_artefact_dir(model_version: ModelVersion) -> Path:
    return Path(settings.HYDRA_MODEL_ROOT) / model_version.artefact_dir


def model_artefacts(model_version: ModelVersion) -> Artefacts:
    """The checked artefacts on disk of a registered version (raises ArtefactError if they are gone)."""
    return read_artefacts(model_artefact_dir(model_version))


def browser_artefact_path(content_hash: str, name: str) -> Path | None:
    """The file a browser may fetch as ``/models/<content_hash>/<name>``, or None.

    Only the files a version's manifest lists for the browser are ever served, so no other
    file under the model root can be reached, whatever the name contains.
    """
    model_version = ModelVersion.objects.filter(content_hash=content_hash).first()
    if model_version is None:
        return None
    directory = model_artefact_dir(model_version)
    try:
        browser_files = _browser_files(directory)
    except ArtefactError:
        return None
    return directory / name if name in browser_files else None


@functools.lru_cache(maxsize=16)
def _browser_files(directory: Path) -> tuple[str, ...]:
    """Artefact directories never change once written, so their checked file list is cached."""
    return read_artefacts(directory).browser_files


# --- The sample grid and what covers it -----------------------------------------------------------


def expected_sample_times(video: Video) -> list[int]:
    """Every sample time of the video's rendition (empty until its duration and frame rate are known).

    A pass over a video computes this once and hands it to what it calls (``sample_times``).
    """
    fps, duration_ms = rendition_timing(video)
    if not duration_ms or not fps:
        return []
    return sample_times_ms(duration_ms, fps, settings.HYDRA_SAMPLE_INTERVAL_MS)


@dataclass(frozen=True)
class Coverage:
    """Which of a video's sample times have accepted features for one model version."""

    covered_ms: tuple[int, ...]
    total: int

    @property
    def fraction(self) -> float:
        return len(self.covered_ms) / self.total if self.total else 0.0


def coverage(video: Video, model_version: ModelVersion, sample_times: Sequence[int] | None = None) -> Coverage:
    """Accepted sample times among the video's grid (``sample_times``, else computed here): one index-only query."""
    expected = set(expected_sample_times(video) if sample_times is None else sample_times)
    covered = (
        FrameFeature.objects.filter(video=video, model_version=model_version, status=FrameFeature.Status.ACCEPTED)
        .order_by("sample_ms")
        .values_list("sample_ms", flat=True)
        .distinct()
    )
    return Coverage(covered_ms=tuple(ms for ms in covered if ms in expected), total=len(expected))


# Every player page asks whether it should analyse; the answers live in each process's own memory
# (the "process" cache), so a page of a covered video asks neither the database nor Redis.
COVERED_MEMO_SECONDS = 600
ACTIVE_VERSION_MEMO_SECONDS = 30
_AUDIT_DRAW = secrets.SystemRandom()


def fully_covered(video: Video, model_version: ModelVersion) -> bool:
    """Whether every sample time of the video has accepted features for this model version.

    A ``True`` is remembered for ``COVERED_MEMO_SECONDS`` per video and model version (a new CNN
    version starts uncovered): a covered video stays covered, except when a quarantine rejects
    features, and then the server recomputes what lost its quorum itself
    (``Recomputation.Reason.QUARANTINE``), so no viewer is needed for it. A ``False`` is never
    remembered: the next viewer must see work as soon as there is some.
    """
    memo = caches["process"]
    key = f"hydra:covered:{video.pk}:{model_version.pk}"
    if memo.get(key):
        return True
    covered = coverage(video, model_version)
    if covered.total and len(covered.covered_ms) == covered.total:
        memo.set(key, True, COVERED_MEMO_SECONDS)
        return True
    return False


def _active_model_version_memo() -> ModelVersion | None:
    """``active_model_version``, remembered for ``ACTIVE_VERSION_MEMO_SECONDS``: pages notice a newly
    activated version that much later (the handshake always assigns work for the true active one)."""
    memo = caches["process"]
    model_version = memo.get("hydra:active-model-version")
    if model_version is None:
        model_version = active_model_version() or False
        memo.set("hydra:active-model-version", model_version, ACTIVE_VERSION_MEMO_SECONDS)
    return model_version or None


def page_model_spec() -> dict | None:
    """The model a page that analyses starts loading before its handshake (``browser_model_spec`` of the active
    version, as remembered for ``ACTIVE_VERSION_MEMO_SECONDS``; the handshake names the one to use)."""
    model_version = _active_model_version_memo()
    return browser_model_spec(model_version) if model_version else None


def seeker_budget(video: Video) -> dict:
    """What the player page's hidden seeker may download per visit, and the rendition's mean bytes per second of
    media, from which the page estimates what its seeks downloaded (a browser cannot count a media element's
    bytes while its response is still streaming)."""
    duration_ms = video.rendition_duration_ms or 0
    try:
        size = video.rendition.size if video.rendition else 0
    except OSError:
        size = 0
    return {
        "bytes_per_visit": settings.HYDRA_SEEKER_BYTES_PER_VISIT,
        "media_bytes_per_second": round(size * 1000 / duration_ms) if size and duration_ms else None,
    }


def page_analyses(video: Video) -> bool:
    """Whether this player page of the video runs the analysis (loads the model, opens the socket).

    Always while some sample lacks accepted features (the handshake then assigns the work). On a
    fully covered video, only a share ``HYDRA_TRUST_AUDIT_RATE`` of pages, drawn here on the
    server with a system random source: those pages get an audit replica (the handshake tops
    them up with already accepted samples, which an honest viewer's features check). The page
    says only "analyse" or nothing, the same for work and audits, so a viewer cannot tell one
    from the other, nor choose or predict the draw (docs/trust.md, "Audits").
    """
    model_version = _active_model_version_memo()
    if model_version is None:
        return False
    if not fully_covered(video, model_version):
        return True
    return _AUDIT_DRAW.random() < settings.HYDRA_TRUST_AUDIT_RATE


@dataclass(frozen=True)
class AcceptedFeatures:
    """The accepted vectors of each analysed sample, in time order; ``positions`` index ``expected_sample_times``.

    ``replicas[i]`` (uint8[R, D]) holds the server's own vector alone where the server computed
    sample i (the truth beats any replica), else every accepted client vector, first accepted
    first; ``codes`` holds each sample's first one.
    """

    sample_ms: list[int]
    positions: np.ndarray
    replicas: list[np.ndarray]
    expected_count: int

    @property
    def codes(self) -> np.ndarray:
        return np.stack([r[0] for r in self.replicas])

    @property
    def coverage(self) -> float:
        return Coverage(covered_ms=tuple(self.sample_ms), total=self.expected_count).fraction


def accepted_features(video: Video, model_version: ModelVersion, sample_times: Sequence[int]) -> AcceptedFeatures:
    """What the heads analyse at each sample time: the server's own vector if it computed one, else accepted ones.

    Of the clients' accepted vectors, one per contributor record (an account, else a network, else a
    device: ``contributors.record_key``), the first ``HYDRA_TRUST_SCORED_REPLICAS`` records in the
    order they were stored. The heads score the most severe of them, so a crowd of sessions of one
    person cannot outnumber an honest replica out of a window's exactly scored combinations
    (``inference.ml.violence.SEVERE_COMBINATIONS``): hiding a sample needs the first records that
    hold it all to lie. Rows at times that are not among the video's ``sample_times`` are ignored.
    """
    position_of = {ms: index for index, ms in enumerate(sample_times)}
    rows = (
        FrameFeature.objects.filter(video=video, model_version=model_version, status=FrameFeature.Status.ACCEPTED)
        .order_by("sample_ms", "-session__is_server", "id")
        .values_list(
            "sample_ms",
            "vector",
            "session__is_server",
            "session_id",
            "session__user_id",
            "session__ip_address",
            "session__device_id",
        )
    )
    limit = settings.HYDRA_TRUST_SCORED_REPLICAS
    chosen: dict[int, list[bytes]] = {}
    records: dict[int, set[str]] = {}
    server_computed: set[int] = set()
    for sample_ms, vector, is_server, session_id, user_id, ip, device_id in rows:
        if sample_ms not in position_of or sample_ms in server_computed:
            continue
        if is_server:
            server_computed.add(sample_ms)
        else:
            record = record_key_of(user_id=user_id, ip=ip, device_id=device_id) or f"session:{session_id}"
            held = records.setdefault(sample_ms, set())
            if record in held or len(held) >= limit:
                continue
            held.add(record)
        chosen.setdefault(sample_ms, []).append(bytes(vector))
    times = sorted(chosen)
    return AcceptedFeatures(
        sample_ms=times,
        positions=np.asarray([position_of[ms] for ms in times], dtype=np.int64),
        replicas=[
            np.frombuffer(b"".join(chosen[ms]), dtype=np.uint8).reshape(-1, model_version.feature_size) for ms in times
        ],
        expected_count=len(sample_times),
    )


# --- Heads and verdicts --------------------------------------------------------------------------


def active_head_versions(model_version: ModelVersion) -> list[HeadVersion]:
    """The versions that analyse features of this CNN version: one per enabled, trained head."""
    return list(
        HeadVersion.objects.select_related("head")
        .filter(is_active=True, head__enabled=True, model_version=model_version)
        .order_by("head__category")
    )


def untrained_heads() -> list[Head]:
    """Enabled heads that produce no score at all: no active version for the active CNN version.

    Violence out of the box; also a head trained on an earlier CNN's features after the CNN changed.
    """
    model_version = active_model_version()
    ready = HeadVersion.objects.filter(is_active=True, model_version=model_version)
    return list(Head.objects.filter(enabled=True).exclude(versions__in=ready).order_by("category"))


def flagged_verdicts(video: Video, head_versions: list[HeadVersion]) -> list[Verdict]:
    """The video's flagged verdicts of these head versions, with what confirming them reads."""
    return list(
        Verdict.objects.filter(video=video, head_version__in=head_versions, flagged=True).select_related(
            "video", "model_version", "head_version"
        )
    )


def stage_summary(verdict: Verdict) -> str:
    """One line a moderator reads: what the screen found and what the confirmer said about it (``Verdict.stages``)."""
    screen = verdict.stages.get("screen")
    if screen is None:
        return "flagged" if verdict.flagged else "not flagged"
    found = len(screen.get("segments", []))
    line = f"screen: {found} segment{'s' if found != 1 else ''}" if screen.get("flagged") else "screen: not flagged"
    confirm = verdict.stages.get("confirm")
    if confirm is None:
        return line
    frames = confirm.get("frames", [])
    reached = sum(1 for _, _, score in frames if score is not None and score >= confirm["threshold"])
    return (
        f"{line} · {confirm['confirmer']}: {confirm['status']} ({reached} of {len(frames)} screened frames "
        f"≥ {confirm['threshold']:.2f}, {confirm['min_confirmed']} needed per segment)"
    )


def analysed_coverage(video: Video, head_versions: list[HeadVersion]) -> float:
    """Coverage at the last analysis by these head versions: the lowest among them, 0 if one never analysed it."""
    coverages = list(
        Verdict.objects.filter(video=video, head_version__in=head_versions).values_list("coverage", flat=True)
    )
    return min(coverages) if len(coverages) == len(head_versions) and coverages else 0.0


# --- Sessions and the handshake ---------------------------------------------------------------------


def session_sample_times(session: ClientSession) -> list[int]:
    """Sample times this session has already delivered, so a reconnecting client resumes after them."""
    return list(session.frame_features.order_by("sample_ms").values_list("sample_ms", flat=True))


def browser_model_spec(model_version: ModelVersion) -> dict:
    """What a browser needs to fetch, verify and run a model version (the handshake's ``model``)."""
    return {
        "hash": model_version.content_hash,
        "url": reverse("inference:artefact", kwargs={"content_hash": model_version.content_hash, "name": MODEL_JSON}),
        "feature_size": model_version.feature_size,
        "preprocessing": model_version.preprocessing,
        "quantisation": model_version.quantisation,
    }
