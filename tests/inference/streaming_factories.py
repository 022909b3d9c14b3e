"""Rows for feature-streaming tests: a model version and a ready video, made directly (no build, no transcode)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from inference.models import ModelVersion
from videos.models import Video

FEATURES = 1280


def make_model(hash_char: str = "a", active: bool = True) -> ModelVersion:
    return ModelVersion.objects.create(
        name="test chunk",
        content_hash=hash_char * 64,
        feature_size=FEATURES,
        preprocessing={"size": [224, 224]},
        quantisation={"dtype": "uint8", "min": 0.0, "max": 6.0},
        artefact_dir=hash_char * 64,
        is_active=active,
    )


def make_ready_video(title: str = "clip", **fields) -> Video:
    owner, _ = get_user_model().objects.get_or_create(username="uploader")
    values = {
        "owner": owner,
        "title": title,
        "status": Video.Status.READY,
        "rendition": "renditions/clip.mp4",
        "fps": 24.0,
        "duration_ms": 3000,
    }
    values.update(fields)
    return Video.objects.create(**values)


def vector(fill: int) -> bytes:
    """A quantised feature vector with every byte ``fill``."""
    return bytes([fill]) * FEATURES
