"""Fixtures for the trust tests: real videos through the site's pipeline, the model, and their ground truth."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.models import HeadVersion, ModelVersion
from inference.services import registry
from inference.trust import verification
from tests.inference.conftest import feature_extractor, model_artefacts, model_version  # noqa: F401
from videos import services as video_services
from videos.models import Video


@pytest.fixture
def seeded_spot_checks(monkeypatch) -> random.Random:
    """Spot checks drawn from a seeded generator, so a run can be repeated exactly."""
    rng = random.Random(6)
    monkeypatch.setattr(verification, "spot_check_rng", rng)
    return rng


@dataclass
class Deadlines:
    started: list[int]
    due: dict[int, datetime]  # the latest due time announced per video
    schedule: Callable[[Video, datetime], None]  # the real inference.scheduling.schedule_coverage


@pytest.fixture
def deadlines(monkeypatch) -> Deadlines:
    """Coverage deadlines are recorded instead of started (eager Celery would cover every video at once)."""
    from inference import scheduling

    recorded = Deadlines(started=[], due={}, schedule=scheduling.schedule_coverage)

    def record(video: Video, due_at: datetime) -> None:
        recorded.started.append(video.pk)
        recorded.due[video.pk] = due_at

    monkeypatch.setattr(scheduling, "schedule_coverage", record)
    return recorded


@pytest.fixture
def ready_video(media_root: Path, make_video, deadlines, django_capture_on_commit_callbacks) -> Callable[..., Video]:
    """``ready_video(title, pattern=..., seconds=...)``: uploaded and transcoded by the site's own services."""
    owner = get_user_model().objects.create_user("uploader", password="pw-uploader-1")

    def _make(title: str, **clip) -> Video:
        path = make_video(f"{title}.mp4", **{"seconds": 4, "fps": 12, "width": 320, "height": 240, **clip})
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
        with django_capture_on_commit_callbacks(execute=True):
            video = video_services.ingest_upload(owner=owner, upload=upload, title=title)
        video.refresh_from_db()
        assert video.status == Video.Status.READY, video.failure_reason
        return video

    return _make


@pytest.fixture
def truth_of(model_version: ModelVersion, feature_extractor) -> Callable:  # noqa: F811
    """``truth_of(video)``: the harness's ground truth (server and browser-profile features) for a video."""
    from inference import selectors
    from inference.ml import cnn
    from tests.trust import harness

    def _truth(video: Video) -> harness.VideoTruth:
        return harness.video_truth(
            video.slug,
            Path(video.rendition.path),
            selectors.expected_sample_times(video),
            lambda rgb: cnn.compute_features(feature_extractor, rgb),
        )

    return _truth


@pytest.fixture
def nudity_head(model_version: ModelVersion):  # noqa: F811
    """The nudity head as the trust tests use it: a head whose threshold they move onto synthetic frames to get
    flags. Its confirmer (InceptionV3 on the decoded pixels, tests/analysis/test_flag_confirmation.py) would judge
    those pixels against its own threshold, which is not what these tests are about, so it is off here."""
    registry.ensure_default_heads(model_version)
    for version in HeadVersion.objects.filter(head__category="nudity"):
        version.config.pop("confirm", None)
        version.save(update_fields=["config"])
    return verification.nudity_head(model_version)
