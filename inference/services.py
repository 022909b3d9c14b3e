"""Use cases of the inference app: each function is one thing the site does."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference import selectors
from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.protocol import FrameSample
from videos.models import Video

logger = logging.getLogger(__name__)

# --- Model registry and the server's own features (ml helper) -----------------------------------

SERVER_FEATURE_BATCH = 32


def ensure_model_version() -> ModelVersion:
    """Build the artefacts of the installed nsfwjs model if missing, register them and make them active.

    Idempotent: a second call finds the directory on disk and the row in the database.
    Building (seconds, imports TensorFlow) happens outside the transaction.
    """
    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    return _register_model_version(artefacts)


@transaction.atomic
def _register_model_version(artefacts: Artefacts) -> ModelVersion:
    manifest = artefacts.manifest
    model_version, created = ModelVersion.objects.get_or_create(
        content_hash=artefacts.content_hash,
        defaults={
            "name": manifest["name"],
            "feature_size": manifest["feature_size"],
            "preprocessing": manifest["preprocessing"],
            "quantisation": manifest["quantisation"],
            "artefact_dir": artefacts.directory.name,
        },
    )
    if not model_version.is_active:
        ModelVersion.objects.select_for_update().filter(is_active=True).update(is_active=False)
        model_version.is_active = True
        model_version.save(update_fields=["is_active"])
        logger.info("model version %s is now active%s", model_version, " (new)" if created else "")
    return model_version


def compute_server_features(
    video: Video, sample_ms: Sequence[int], model_version: ModelVersion | None = None
) -> np.ndarray:
    """float32[N, feature_size] features of the video's rendition at the given sample times, in order.

    The server's own path for the frames browsers analyse: PyAV decodes the frame nearest
    each sample time, converts it to RGB as the browser does, and the Keras CNN (loaded once
    per process) computes its features, a batch of frames at a time to bound memory.
    """
    from inference.ml import cnn, frames

    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models`")
    if not video.rendition:
        raise ValueError(f"video {video.pk} has no rendition to analyse")
    artefact_dir = selectors.model_artefacts(model_version).directory
    model = cnn.cached_feature_extractor(str(artefact_dir))
    times = [int(ms) for ms in sample_ms]
    batches = [
        cnn.compute_features(
            model, frames.decode_frames_at(video.rendition.path, times[start : start + SERVER_FEATURE_BATCH])
        )
        for start in range(0, len(times), SERVER_FEATURE_BATCH)
    ]
    if not batches:
        return np.zeros((0, model_version.feature_size), dtype=np.float32)
    return np.concatenate(batches, axis=0)


# --- Feature streaming (client helper): browser sessions and their features ---------------------


class SessionMismatch(Exception):
    """A client asked to resume a session it may not continue (other video, other user, quarantined)."""


@dataclass(frozen=True)
class RecordedFeatures:
    accepted: tuple[int, ...]
    duplicates: tuple[int, ...]


def start_client_session(
    *,
    video: Video,
    model_version: ModelVersion,
    user_id: int | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    resume_id: str | None = None,
) -> ClientSession:
    """Open a contributor session for one video and model version, or reopen the caller's earlier one.

    A resumed session keeps its model version: a page that loaded an older CNN chunk may finish
    its work with it, and its features are stored under that version.
    """
    if resume_id is None:
        return ClientSession.objects.create(
            video=video,
            model_version=model_version,
            user_id=user_id,
            ip_address=ip_address,
            user_agent=user_agent[:300],
        )
    with transaction.atomic():
        try:
            session = ClientSession.objects.select_for_update().get(pk=uuid.UUID(resume_id), is_server=False)
        except (ValueError, ClientSession.DoesNotExist):
            raise SessionMismatch("no such session") from None
        if session.video_id != video.pk:
            raise SessionMismatch("the session belongs to another video")
        if session.user_id is not None and session.user_id != user_id:
            raise SessionMismatch("the session belongs to another user")
        if session.state == ClientSession.State.QUARANTINED:
            raise SessionMismatch("the session is quarantined")
        session.state = ClientSession.State.ACTIVE
        session.ip_address = ip_address
        session.save(update_fields=["state", "ip_address", "last_seen_at"])
    return session


def identify_client_session(session: ClientSession, *, backend: str, device_id: str) -> None:
    """Record what the client said it runs on (its ``hello``)."""
    session.backend = backend
    session.device_id = device_id
    session.save(update_fields=["backend", "device_id", "last_seen_at"])


def record_frame_features(session: ClientSession, samples: Sequence[FrameSample]) -> RecordedFeatures:
    """Store a validated batch in one insert; a sample the session already sent is reported as duplicate.

    One row per (session, sample_ms): the unique constraint makes a replay a no-op even when two
    copies of a batch race each other.
    """
    feature_size = session.model_version.feature_size
    wrong = [s.sample_ms for s in samples if len(s.vector) != feature_size]
    if wrong:
        raise ValueError(f"vectors of samples {wrong} are not {feature_size} bytes long")
    with transaction.atomic():
        stored = set(
            FrameFeature.objects.filter(session=session, sample_ms__in=[s.sample_ms for s in samples]).values_list(
                "sample_ms", flat=True
            )
        )
        new = [s for s in samples if s.sample_ms not in stored]
        FrameFeature.objects.bulk_create(
            [
                FrameFeature(
                    video_id=session.video_id,
                    model_version_id=session.model_version_id,
                    session=session,
                    sample_ms=s.sample_ms,
                    vector=s.vector,
                    backend=session.backend,
                    inference_ms=s.inference_ms,
                )
                for s in new
            ],
            ignore_conflicts=True,
        )
        ClientSession.objects.filter(pk=session.pk).update(last_seen_at=timezone.now())
    return RecordedFeatures(
        accepted=tuple(s.sample_ms for s in new),
        duplicates=tuple(s.sample_ms for s in samples if s.sample_ms in stored),
    )


def close_client_session(session: ClientSession) -> None:
    """The client went away; it may come back and resume."""
    ClientSession.objects.filter(pk=session.pk, state=ClientSession.State.ACTIVE).update(
        state=ClientSession.State.CLOSED
    )
