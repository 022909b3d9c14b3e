"""Fixtures for moderation tests: the roles, a ready video, and inference results made directly."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable

import av
import pytest
from django.contrib.auth.models import Group, User

from inference.models import FrameScore, Head, HeadVersion, ModelVersion, Verdict
from moderation.models import PolicyReason
from videos import services as video_services
from videos.models import Video

_hashes = itertools.count(1)


def _user(username: str, *, staff: bool = False, groups: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def uploader(db) -> User:
    return _user("uploader")


@pytest.fixture
def viewer(db) -> User:
    return _user("viewer")


@pytest.fixture
def staff(db) -> User:
    """Staff without any moderation permission (e.g. an engineer)."""
    return _user("engineer", staff=True)


@pytest.fixture
def moderator(db) -> User:
    return _user("mod", staff=True, groups=("Moderators",))


@pytest.fixture
def moderator2(db) -> User:
    return _user("mod2", staff=True, groups=("Moderators",))


@pytest.fixture
def senior(db) -> User:
    return _user("senior", staff=True, groups=("Senior moderators",))


@pytest.fixture
def make_ready_video(db, uploader) -> Callable[..., Video]:
    def _make(title: str = "Clip", owner: User | None = None, **fields) -> Video:
        fields.setdefault("status", Video.Status.READY)
        fields.setdefault("duration_ms", 10_000)
        fields.setdefault("fps", 25.0)
        return Video.objects.create(owner=owner or uploader, title=title, **fields)

    return _make


def hold_for_review(video: Video) -> Video:
    """Held, as ``videos.services.ingest_upload`` leaves a new upload under HYDRA_PUBLICATION_POLICY=hold."""
    Video.objects.filter(pk=video.pk).update(
        visibility=Video.Visibility.HELD, visibility_reason=video_services.HELD_FOR_REVIEW_REASON
    )
    video.refresh_from_db()
    return video


@pytest.fixture
def video(make_ready_video) -> Video:
    return make_ready_video("Beach day")


@pytest.fixture
def model_version(db) -> ModelVersion:
    return ModelVersion.objects.create(
        name="mobilenetv2-nsfwjs",
        content_hash=f"{next(_hashes):064x}",
        feature_size=1280,
        preprocessing={},
        quantisation={},
        artefact_dir="test",
        is_active=True,
    )


@pytest.fixture
def make_head(db, model_version) -> Callable[..., HeadVersion]:
    def _make(category: str, *, severity: int = 3, threshold: float = 0.6, kind: str = "frame") -> HeadVersion:
        head, _ = Head.objects.get_or_create(
            category=category,
            defaults={"label": category.title(), "kind": kind, "threshold": threshold, "severity": severity},
        )
        return HeadVersion.objects.create(
            head=head, version=head.versions.count() + 1, model_version=model_version, is_active=True
        )

    return _make


@pytest.fixture
def make_verdict(db, make_head) -> Callable[..., Verdict]:
    """A verdict and its per-frame scores: ``scores`` maps sample_ms to score."""

    def _make(
        video: Video,
        category: str = "nudity",
        *,
        score: float = 0.9,
        severity: int = 4,
        scores=None,
        threshold: float = 0.6,
        coverage: float = 1.0,
    ) -> Verdict:
        head_version = HeadVersion.objects.filter(head__category=category, is_active=True).first() or make_head(
            category, severity=severity, threshold=threshold
        )
        scores = scores or {ms: (score if 3000 <= ms <= 5000 else 0.1) for ms in range(0, video.duration_ms, 1000)}
        for ms, value in scores.items():
            FrameScore.objects.update_or_create(
                video=video, head_version=head_version, sample_ms=ms, defaults={"score": value}
            )
        flagged_ms = sorted(ms for ms, value in scores.items() if value >= threshold)
        segments = [[flagged_ms[0], flagged_ms[-1] + 1000, max(scores.values())]] if flagged_ms else []
        top = sorted(scores.items(), key=lambda item: -item[1])[:4]
        verdict, _ = Verdict.objects.update_or_create(
            video=video,
            head_version=head_version,
            defaults={
                "model_version": head_version.model_version,
                "score": score,
                "threshold": threshold,
                "flagged": score >= threshold,
                "segments": segments,
                "top_frames": [[ms, value] for ms, value in top],
                "coverage": coverage,
            },
        )
        return verdict

    return _make


@pytest.fixture
def reason() -> Callable[[str], PolicyReason]:
    return lambda code: PolicyReason.objects.get(code=code)


@pytest.fixture
def make_playable_video(media_root, make_video, make_ready_video) -> Callable[..., Video]:
    """A ready video whose rendition (and poster) exist under MEDIA_ROOT, as transcoding leaves them."""

    def _make(title: str = "Playable", *, seconds: int = 10, pattern: str = "bars", **fields) -> Video:
        video = make_ready_video(title, duration_ms=seconds * 1000, fps=25.0, **fields)
        clip = make_video(f"{video.media_key}.mp4", seconds=seconds, fps=25, width=320, height=180, pattern=pattern)
        rendition = media_root / "renditions" / f"{video.media_key}.mp4"
        rendition.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, rendition)
        poster = media_root / "posters" / f"{video.media_key}.jpg"
        poster.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(rendition)) as container:
            next(container.decode(video=0)).to_image().save(poster, format="JPEG")
        video.rendition.name = f"renditions/{video.media_key}.mp4"
        video.poster.name = f"posters/{video.media_key}.jpg"
        video.rendition_width, video.rendition_height = 320, 180
        video.save()
        return video

    return _make
