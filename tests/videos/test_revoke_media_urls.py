"""Revoking a video's media URLs by renaming its rendition and poster to a new ``media_key``.

The URLs are checked with no database read, so the files' names are the only thing a revocation can change.
These tests hold the rename to its promises: new names, old names gone, the same bytes, nothing renamed by a
rolled-back change, and at every step (a crash included) a row that names files that exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import transaction
from django.test import Client

from videos import services
from videos.media_urls import MediaFile, issue
from videos.models import Video, poster_name, rendition_name


def stored(video: Video) -> dict[str, bytes]:
    """The bytes of the files the row names now, read from the database; fails if one is missing."""
    video.refresh_from_db()
    return {
        field.name: Path(default_storage.path(field.name)).read_bytes() for field in (video.rendition, video.poster)
    }


@pytest.fixture
def video(ready_video, owner) -> Video:
    return ready_video(owner, title="revoked")


def test_revoking_renames_the_files_to_a_new_media_key_and_old_urls_answer_404(
    video, django_capture_on_commit_callbacks, settings
):
    settings.HYDRA_MEDIA_SERVER = "django"
    before = stored(video)
    old_key, storage_key, original = video.media_key, video.storage_key, video.original.name
    old_urls = [issue(video, media) for media in MediaFile]
    assert [Client().get(url).status_code for url in old_urls] == [200, 200]

    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_media_urls(video)

    after = stored(video)
    assert video.media_key != old_key
    assert list(after) == [rendition_name(video.media_key), poster_name(video.media_key)]
    assert list(after.values()) == list(before.values())
    assert not any(Path(default_storage.path(name)).exists() for name in before)
    assert (video.storage_key, video.original.name) == (storage_key, original)  # the original is never served
    assert Path(default_storage.path(original)).is_file()
    assert [Client().get(url).status_code for url in old_urls] == [404, 404]
    assert [Client().get(issue(video, media)).status_code for media in MediaFile] == [200, 200]


def test_a_rolled_back_change_revokes_nothing(video, django_capture_on_commit_callbacks):
    before, old_key = stored(video), video.media_key
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.revoke_media_urls(video)
        raise RuntimeError("the moderator's decision failed")
    assert callbacks == []
    assert stored(video) == before and video.media_key == old_key


def test_a_failure_while_linking_leaves_the_video_as_it_was_and_no_orphan(
    video, media_root, django_capture_on_commit_callbacks, monkeypatch
):
    before, old_key = stored(video), video.media_key
    real_link, links = os.link, []

    def link_then_fail_on_the_poster(source, target):
        links.append(target)
        if len(links) == 2:
            raise OSError("disk full")
        real_link(source, target)

    monkeypatch.setattr(services.os, "link", link_then_fail_on_the_poster)
    files_before = sorted(path for path in media_root.rglob("*") if path.is_file())
    with django_capture_on_commit_callbacks(execute=True):  # robust: the failure is logged, not raised
        services.revoke_media_urls(video)

    assert len(links) == 2
    assert stored(video) == before and video.media_key == old_key
    assert sorted(path for path in media_root.rglob("*") if path.is_file()) == files_before


def test_a_crash_before_the_old_names_are_unlinked_leaves_a_playable_video(
    video, django_capture_on_commit_callbacks, monkeypatch
):
    """The worst case: the row names the new files and the old names linger (URLs issued before keep working
    until they expire, as before revocation existed); the row never names a missing file."""
    before = stored(video)

    def crash(names):
        raise OSError("the process died")

    monkeypatch.setattr(services, "_delete_files", crash)
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_media_urls(video)

    assert list(stored(video).values()) == list(before.values())
    assert all(Path(default_storage.path(name)).is_file() for name in before)


def test_a_video_without_files_gets_a_new_key_and_names_nothing(owner, django_capture_on_commit_callbacks):
    video = Video.objects.create(owner=owner, title="failed", status=Video.Status.FAILED)
    old_key = video.media_key
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_media_urls(video)
    video.refresh_from_db()
    assert video.media_key != old_key and not video.rendition and not video.poster


def test_a_poster_chosen_on_a_page_loaded_before_a_revocation_does_not_bring_the_old_name_back(
    video, django_capture_on_commit_callbacks
):
    loaded = Video.objects.get(pk=video.pk)  # the edit page's copy, read before the moderator acts
    old_poster, old_bytes = loaded.poster.name, stored(video)[video.poster.name]
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_media_urls(video)

    services.edit_video(loaded, title="Retitled", description="", poster_at_seconds=1.5)

    assert not Path(default_storage.path(old_poster)).exists()
    files = stored(video)
    assert video.poster.name == poster_name(video.media_key) == loaded.poster.name
    assert files[video.poster.name] != old_bytes  # the new frame, under the new name
