"""Fixtures for the videos tests: users of every kind and videos that went through the real pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from videos import services
from videos.models import Video


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture
def upload_tmp(tmp_path: Path, settings) -> Path:
    """Django's temporary upload files go here, so tests can check that none are left."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("uploader", password="pw-uploader-1")


@pytest.fixture
def stranger(db) -> User:
    return User.objects.create_user("stranger", password="pw-stranger-1")


@pytest.fixture
def moderator(db) -> User:
    user = User.objects.create_user("moderator", password="pw-moderator-1")
    user.user_permissions.add(Permission.objects.get(codename="view_hidden_video", content_type__app_label="videos"))
    return User.objects.get(pk=user.pk)  # drop the permission cache


@pytest.fixture
def client_for() -> Callable[[User | None], Client]:
    def _client(user: User | None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return _client


@pytest.fixture
def ready_video(media_root: Path, make_video, django_capture_on_commit_callbacks) -> Callable[..., Video]:
    """``ready_video(owner, visibility=..., **make_video kwargs)``: ingested and transcoded (tasks run eagerly)."""

    def _make(user: User, *, visibility: str = Video.Visibility.PUBLISHED, title: str = "Clip", **clip) -> Video:
        path = make_video(f"{title}.mp4", **{"seconds": 2, "fps": 12, "width": 160, "height": 120, **clip})
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
        with django_capture_on_commit_callbacks(execute=True):
            video = services.ingest_upload(owner=user, upload=upload, title=title)
        video.refresh_from_db()
        assert video.status == Video.Status.READY, video.failure_reason
        if visibility != video.visibility:
            Video.objects.filter(pk=video.pk).update(visibility=visibility, visibility_reason="Test reason.")
            video.refresh_from_db()
        return video

    return _make
