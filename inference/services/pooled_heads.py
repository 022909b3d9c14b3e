"""Pooled heads (the shipped violence head): training from a folder of clips, and the weights Hydra ships.

Training reads every clip's features from a disk cache under ``HYDRA_MODEL_ROOT/clip-features``
(``inference.ml.clip_features``: decoded and run through the CNN once per clip and sampling grid),
cross-validates, and registers the result as the category's next version, like ``train_head`` does
for the LSTM.

Shipped weights live in the repository under ``inference/ml/weights/<category>/interval-<ms>/``
(``pooled_head.npz``, ``report.json``, ``roc.png``, ``manifest.json``). ``build_models`` copies the set
trained at the site's sample interval into the model root and registers it, but only for the CNN it
was trained on (``manifest.json`` names its content hash) and only while the category has no version
for that CNN: an operator's own training is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from inference import selectors
from inference.ml.clip_features import cached_clip_features, phase_offsets_ms, sampled_features
from inference.ml.pooled_training import PhasedClip, train_and_report
from inference.ml.training import find_labelled_videos
from inference.ml.violence import WEIGHTS_FILE, PooledConfig
from inference.models import Head, HeadVersion, ModelVersion
from inference.services.registry import DEFAULT_SEGMENT_RULES, VIOLENCE, register_head_version
from inference.services.training import register_trained_version

logger = logging.getLogger(__name__)

SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "ml" / "weights"
MANIFEST_FILE = "manifest.json"
SHIPPED_FILES = (WEIGHTS_FILE, "report.json", "roc.png", MANIFEST_FILE)
RUNNER = "pooled_linear"


def clip_feature_cache() -> Path:
    return Path(settings.HYDRA_MODEL_ROOT) / "clip-features"


def phased_clips_from_folder(
    folder: Path, model_version: ModelVersion, positive: str | None = None, phases: int = 4
) -> list[PhasedClip]:
    """Every labelled clip of ``folder`` at the site's sample interval, from ``phases`` starting offsets.

    Only the frames on the grid of offsets go through the CNN (the frame nearest to each multiple of
    ``interval / phases``), cached per file: a second run reads the cache.
    """
    interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
    offsets = phase_offsets_ms(interval_ms, phases)
    artefact_dir = selectors.model_artefact_dir(model_version)
    clips = []
    for labelled in find_labelled_videos(Path(folder), positive):
        features = cached_clip_features(labelled.path, artefact_dir, clip_feature_cache(), interval_ms / phases)
        clips.append(
            PhasedClip(
                key=str(labelled.path.relative_to(folder)),
                label=labelled.label,
                phases=tuple(sampled_features(features, interval_ms, offset) for offset in offsets),
            )
        )
    return clips


def train_pooled_head_version(
    category: str,
    clips: list[PhasedClip],
    config: PooledConfig,
    folds: int = 5,
    seed: int = 0,
    source: str = "",
    activate: bool = True,
) -> HeadVersion:
    """Cross-validate and fit the category's pooled head; register it as the next version (earlier ones stay).

    The version's report.json carries the k-fold figures, the sample interval and the CNN's content hash.
    """

    def train(staging: Path, head: Head, model_version: ModelVersion) -> dict:
        report = train_and_report(
            clips, config, staging, folds=folds, seed=seed, operating_threshold=head.threshold, title=head.label
        )
        report["source"] = source
        report["sample_interval_ms"] = settings.HYDRA_SAMPLE_INTERVAL_MS
        report["cnn_content_hash"] = model_version.content_hash
        (staging / "report.json").write_text(json.dumps(report, indent=2))
        return report

    return register_trained_version(
        category, train, _version_config(config, settings.HYDRA_SAMPLE_INTERVAL_MS), activate=activate
    )


def _version_config(config: PooledConfig, interval_ms: int, shipped: str | None = None) -> dict:
    return {
        "runner": RUNNER,
        **config.to_dict(),
        "sample_interval_ms": interval_ms,
        "segments": DEFAULT_SEGMENT_RULES,
        **({"shipped": shipped} if shipped else {}),
    }


def write_shipped_manifest(directory: Path, category: str, model_version: ModelVersion, interval_ms: int) -> None:
    """Name what a copied version directory was trained on, so ``build_models`` can ship it safely."""
    (directory / MANIFEST_FILE).write_text(
        json.dumps(
            {
                "category": category,
                "runner": RUNNER,
                "cnn_content_hash": model_version.content_hash,
                "sample_interval_ms": interval_ms,
            },
            indent=2,
        )
    )


def shipped_directory(category: str, interval_ms: int) -> Path:
    return SHIPPED_ROOT / category / f"interval-{interval_ms}"


def ensure_shipped_heads(model_version: ModelVersion) -> list[HeadVersion]:
    """Register the shipped weights of each default head that has none for this CNN yet; idempotent."""
    interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
    registered = []
    for head in Head.objects.filter(category__in=[VIOLENCE.category]):
        source = shipped_directory(head.category, interval_ms)
        if not (source / MANIFEST_FILE).exists():
            logger.info("no shipped %s weights for samples every %s ms", head.category, interval_ms)
            continue
        manifest = json.loads((source / MANIFEST_FILE).read_text())
        if manifest["cnn_content_hash"] != model_version.content_hash:
            logger.warning("shipped %s weights were trained on another CNN; not used", head.category)
            continue
        if head.versions.filter(model_version=model_version).exists():
            continue
        digest = _directory_digest(source)
        target = Path(settings.HYDRA_MODEL_ROOT) / "heads" / head.category / f"shipped-{digest[:12]}"
        if not target.exists():
            staging = target.with_name(f".{target.name}-{uuid.uuid4().hex}")
            shutil.copytree(source, staging)
            staging.rename(target)
        config = PooledConfig.from_dict(json.loads((source / "report.json").read_text())["config"])
        registered.append(
            register_head_version(
                head,
                model_version,
                weights_path=str(target.relative_to(settings.HYDRA_MODEL_ROOT)),
                config=_version_config(config, interval_ms, shipped=digest),
                metrics=json.loads((source / "report.json").read_text()),
            )
        )
    return registered


def _directory_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in SHIPPED_FILES:
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()
