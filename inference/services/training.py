"""Training temporal heads: labelled sequences of features, and the head versions trained on them."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings

from inference import heads, selectors
from inference.ml.quantise import dequantise, quantise
from inference.ml.temporal import TemporalConfig
from inference.ml.training import LabelledSequence, TrainingOptions, find_labelled_videos, train_temporal_head
from inference.models import Head, HeadVersion, ModelVersion, TrainingClip
from inference.sampling import sample_times_ms
from inference.services.registry import DEFAULT_SEGMENT_RULES, register_head_version
from inference.services.server_features import features_at
from videos.media import probe
from videos.models import Video


def training_clip_features(path: Path, model_version: ModelVersion) -> tuple[list[int], np.ndarray]:
    """A labelled file's features at its sample times: from the PostgreSQL cache, or decoded once and cached.

    Decoding uses the same PyAV frame path and Keras CNN as the server's own analysis, and the cached
    vectors are quantised exactly like browsers' features, so a head learns what it will later see.
    """
    interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    cached = TrainingClip.objects.filter(sha256=sha256, model_version=model_version, interval_ms=interval_ms).first()
    if cached is None:
        duration_ms, times, codes = _decode_training_clip(path, model_version, interval_ms)
        cached, _created = TrainingClip.objects.get_or_create(
            sha256=sha256,
            model_version=model_version,
            interval_ms=interval_ms,
            defaults={
                "source_name": path.name[:255],
                "duration_ms": duration_ms,
                "sample_ms": times,
                "vectors": codes.tobytes(),
            },
        )
    codes = np.frombuffer(bytes(cached.vectors), dtype=np.uint8).reshape(len(cached.sample_ms), -1)
    return list(cached.sample_ms), dequantise(codes)


def _decode_training_clip(
    path: Path, model_version: ModelVersion, interval_ms: int
) -> tuple[int, list[int], np.ndarray]:
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(probed.duration_ms, probed.fps, interval_ms)
    features = features_at(path, times, selectors.model_artefact_dir(model_version))
    return probed.duration_ms, times, quantise(features)


def sequences_from_folder(
    folder: Path, model_version: ModelVersion, positive: str | None = None
) -> list[LabelledSequence]:
    """One labelled sequence per video file of a RWF-2000 / Hockey Fights style folder (decoded once, then cached)."""
    sequences = []
    for labelled in find_labelled_videos(folder, positive):
        _times, features = training_clip_features(labelled.path, model_version)
        sequences.append(
            LabelledSequence(key=str(labelled.path.relative_to(folder)), label=labelled.label, features=features)
        )
    return sequences


def sequences_from_labels(labels: list[tuple[int, int]], model_version: ModelVersion) -> list[LabelledSequence]:
    """One labelled sequence per ``(video_id, label)``: the video's stored features (longest unbroken run).

    The labels come from the caller (moderators' final decisions, ``moderation.selectors.final_labels``):
    inference knows nothing of moderation. No decoding: only features already accepted are used.
    """
    sequences = []
    for video_id, label in labels:
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            continue
        accepted = selectors.accepted_features(video, model_version, selectors.expected_sample_times(video))
        runs = heads.contiguous_runs(accepted.positions)
        if not runs:
            continue
        start, end = max(runs, key=lambda run: run[1] - run[0])
        features = dequantise(accepted.codes[start:end])
        sequences.append(LabelledSequence(key=f"video:{video_id}", label=int(label), features=features))
    return sequences


def train_temporal_head_version(
    category: str,
    sequences: list[LabelledSequence],
    config: TemporalConfig,
    options: TrainingOptions | None = None,
    source: str = "",
    activate: bool = True,
) -> HeadVersion:
    """Train the category's temporal head and register the result as its next version (earlier ones stay)."""

    def train(staging: Path, head: Head, model_version: ModelVersion) -> dict:
        report = train_temporal_head(sequences, config, staging, options, title=head.label)
        report["source"] = source
        return report

    version_config = {
        "runner": "keras_lstm",
        **config.to_dict(),
        "sample_interval_ms": settings.HYDRA_SAMPLE_INTERVAL_MS,
        "segments": DEFAULT_SEGMENT_RULES,
    }
    return register_trained_version(category, train, version_config, activate=activate)


def register_trained_version(
    category: str,
    train: Callable[[Path, Head, ModelVersion], dict],
    version_config: dict,
    activate: bool = True,
) -> HeadVersion:
    """Run ``train`` into a staging folder and register what it wrote as the category's next version.

    ``train(staging, head, model_version)`` writes the weights and returns the report. Weights,
    report.json and roc.png end up in HYDRA_MODEL_ROOT/heads/<category>/v<N>/; a failed training
    leaves no folder and no row behind. Only temporal heads (scoring windows of samples) are trained.
    """
    head = Head.objects.get(category=category)
    if head.kind != Head.Kind.TEMPORAL:
        raise ValueError(f"{category} is a {head.kind} head; only temporal heads are trained here")
    model_version = selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models` first")
    heads_root = Path(settings.HYDRA_MODEL_ROOT) / "heads" / category
    staging = heads_root / f".training-{uuid.uuid4().hex}"
    try:
        report = train(staging, head, model_version)
        version = (head.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        final = heads_root / f"v{version}"
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return register_head_version(
        head,
        model_version,
        weights_path=str(final.relative_to(settings.HYDRA_MODEL_ROOT)),
        config=version_config,
        metrics=report,
        activate=activate,
        version=version,
    )
