"""Queries about inference state. Read-only; state changes live in inference.services."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from inference.ml.artefacts import ArtefactError, Artefacts, read_artefacts
from inference.ml.export import MODEL_JSON
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.sampling import sample_times_ms
from videos.models import Video

# --- Model registry (ml helper) -----------------------------------------------------------------


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


# --- Feature streaming (client helper): sample assignment and coverage -------------------------


def video_sample_times(video: Video) -> list[int]:
    """Every sample time of a video's rendition (inference.sampling decides which frames)."""
    if not video.duration_ms or not video.fps:
        return []
    return sample_times_ms(video.duration_ms, video.fps, settings.HYDRA_SAMPLE_INTERVAL_MS)


def assigned_sample_times(session: ClientSession) -> list[int]:
    """The sample times this session is asked to compute.

    Today every session gets every sample time of its video. This is the single place to
    change when the server starts spreading samples across sessions to compare clients.
    """
    return video_sample_times(session.video)


def session_sample_times(session: ClientSession) -> list[int]:
    """Sample times this session has already delivered, so a reconnecting client resumes after them."""
    return list(session.frame_features.order_by("sample_ms").values_list("sample_ms", flat=True))


@dataclass(frozen=True)
class Coverage:
    """Which of a video's sample times have accepted features for one model version."""

    covered_ms: tuple[int, ...]
    total: int

    @property
    def fraction(self) -> float:
        return len(self.covered_ms) / self.total if self.total else 0.0


def coverage(video: Video, model_version: ModelVersion) -> Coverage:
    """One index-only query on (video, model_version, sample_ms) plus the sample grid."""
    expected = set(video_sample_times(video))
    covered = (
        FrameFeature.objects.filter(video=video, model_version=model_version, status=FrameFeature.Status.ACCEPTED)
        .order_by("sample_ms")
        .values_list("sample_ms", flat=True)
        .distinct()
    )
    return Coverage(covered_ms=tuple(ms for ms in covered if ms in expected), total=len(expected))


def browser_model_spec(model_version: ModelVersion) -> dict:
    """What a browser needs to fetch, verify and run a model version (the handshake's ``model``)."""
    return {
        "hash": model_version.content_hash,
        "url": reverse("inference:artefact", kwargs={"content_hash": model_version.content_hash, "name": MODEL_JSON}),
        "feature_size": model_version.feature_size,
        "preprocessing": model_version.preprocessing,
        "quantisation": model_version.quantisation,
    }
