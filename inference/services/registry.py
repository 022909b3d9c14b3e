"""The registry: which CNN version browsers run, and which heads (categories) score its features."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from inference import heads, selectors
from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.models import Head, HeadVersion, ModelVersion

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_RULES = {"edge_margin": 0.2, "max_gap_ms": 2000, "min_length_ms": 0}


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


@dataclass(frozen=True)
class DefaultHead:
    category: str
    label: str
    kind: str
    threshold: float
    severity: int
    description: str


NUDITY = DefaultHead(
    category="nudity",
    label="Nudity",
    kind=Head.Kind.FRAME,
    threshold=0.7,
    severity=4,
    description=(
        "nsfwjs's dense head (1280-256-128-5) on each frame's features. Score = P(porn) + P(hentai); "
        "'sexy' (swimwear, underwear) and 'drawing' do not count as nudity."
    ),
)
VIOLENCE = DefaultHead(
    category="violence",
    label="Violence",
    kind=Head.Kind.TEMPORAL,
    threshold=0.9,
    severity=5,
    description=(
        "A linear classifier over windows of consecutive frame features (their mean, spread and change). "
        "Hydra ships weights trained on real surveillance clips (build_models registers them); "
        "manage.py train_head violence ... trains a new version."
    ),
)
NUDITY_POSITIVE_CLASSES = ["porn", "hentai"]
# A nudity flag opens a case only when nsfwjs's InceptionV3, run by the server on the flagged frames it decoded
# itself, confirms two of them at the head's threshold (docs/models.md: false flags on harmless real footage
# 18.5 % -> 0.8 %). ``inference.services.flag_confirmation`` reads it from the version's ``config["confirm"]``.
NUDITY_CONFIRMATION = {"confirmer": "nsfwjs_inception_v3", "min_confirmed": 2}


def register_head(category: str, label: str, kind: str, threshold: float, severity: int, description: str = "") -> Head:
    """Register a moderation category (or update its label and description). Adding a category is this call."""
    if kind not in Head.Kind.values:
        raise ValueError(f"kind must be one of {Head.Kind.values}, got {kind!r}")
    if not Head.MIN_THRESHOLD <= threshold <= Head.MAX_THRESHOLD:
        raise ValueError(f"threshold must be within [{Head.MIN_THRESHOLD:g}, {Head.MAX_THRESHOLD:g}], got {threshold}")
    if not Head.MIN_SEVERITY <= severity <= Head.MAX_SEVERITY:
        raise ValueError(f"severity must be {Head.MIN_SEVERITY} to {Head.MAX_SEVERITY}, got {severity}")
    head, created = Head.objects.get_or_create(
        category=category,
        defaults={
            "label": label,
            "kind": kind,
            "threshold": threshold,
            "severity": severity,
            "description": description,
        },
    )
    if not created and head.kind != kind:
        raise ValueError(f"head {category!r} is {head.kind}, not {kind}")
    if not created and (head.label, head.description) != (label, description):
        head.label, head.description = label, description
        head.save(update_fields=["label", "description"])
    return head


@transaction.atomic
def register_head_version(
    head: Head,
    model_version: ModelVersion,
    weights_path: str,
    config: dict,
    metrics: dict | None = None,
    activate: bool = True,
    version: int | None = None,
) -> HeadVersion:
    """Add the next version of a head (or the given number, if free); the previous versions stay for rollback."""
    if config.get("runner") not in heads.RUNNERS:
        raise ValueError(f"config['runner'] must be one of {sorted(heads.RUNNERS)}, got {config.get('runner')!r}")
    locked = Head.objects.select_for_update().get(pk=head.pk)
    latest = locked.versions.order_by("-version").values_list("version", flat=True).first() or 0
    if version is not None and version <= latest:
        raise ValueError(f"{head.category} already has version {latest}; cannot register version {version}")
    created = HeadVersion.objects.create(
        head=locked,
        version=version or latest + 1,
        model_version=model_version,
        weights_path=weights_path,
        config=config,
        metrics=metrics or {},
    )
    if activate:
        return activate_head_version(head.category, created.version)
    return created


@transaction.atomic
def activate_head_version(category: str, version: int) -> HeadVersion:
    """Make one version of a head the one that analyses videos (roll forward or back)."""
    head = Head.objects.select_for_update().get(category=category)
    try:
        chosen = head.versions.get(version=version)
    except HeadVersion.DoesNotExist:
        known = list(head.versions.order_by("version").values_list("version", flat=True))
        raise ValueError(f"{category} has no version {version}; versions: {known or 'none'}") from None
    if not heads.weights_location(chosen).exists():
        raise ValueError(f"{chosen}: weights {heads.weights_location(chosen)} are missing")
    head.versions.filter(is_active=True).exclude(pk=chosen.pk).update(is_active=False)
    if not chosen.is_active:
        chosen.is_active = True
        chosen.save(update_fields=["is_active"])
    return chosen


def ensure_default_heads(model_version: ModelVersion | None = None) -> list[Head]:
    """Register nudity (with nsfwjs's own weights) and violence (no weights here: build_models then registers
    the shipped ones, ``pooled_heads.ensure_shipped_heads``); idempotent."""
    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models` first")
    nudity = register_head(**NUDITY.__dict__)
    register_head(**VIOLENCE.__dict__)
    if not nudity.versions.filter(model_version=model_version).exists():
        artefacts = selectors.model_artefacts(model_version)
        weights = Path(model_version.artefact_dir) / artefacts.manifest["server_files"]["nsfw_head"]
        register_head_version(
            nudity,
            model_version,
            weights_path=str(weights),
            config={
                "runner": "nsfwjs_dense",
                "positive_classes": NUDITY_POSITIVE_CLASSES,
                "segments": DEFAULT_SEGMENT_RULES,
                "confirm": NUDITY_CONFIRMATION,
                "source": artefacts.manifest.get("source", ""),
            },
        )
    return list(Head.objects.filter(category__in=[NUDITY.category, VIOLENCE.category]))
