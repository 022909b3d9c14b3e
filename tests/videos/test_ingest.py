"""Uploading through the page and the API: good files become videos, bad files leave no trace.

Every bad kind is checked on both doors with the same message, and afterwards MEDIA_ROOT,
the temporary upload folder and the videos table are empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from tests.videos.conftest import files_under
from tests.videos.test_media import faststart_copy
from videos.models import Video
from videos.synthetic import write_audio_only

PAGE = "page"
API = "api"


def post_upload(client, door: str, path: Path, title: str = "My clip"):
    with path.open("rb") as handle:
        if door == PAGE:
            return client.post(
                reverse("videos:upload"), {"title": title, "file": handle}, headers={"accept": "application/json"}
            )
        return client.post("/api/videos/", {"title": title, "file": handle})


def error_message(response) -> str:
    return response.json()["error"]["message"]


def make_bad_file(kind: str, folder: Path, make_video) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte":
        path = folder / "empty.mp4"
        path.write_bytes(b"")
    elif kind == "not-a-video":
        path = folder / "holiday.mp4"  # the name and Content-Type lie
        path.write_bytes(b"%PDF-1.4\n" + b"not really a video " * 400)
    elif kind == "audio-only":
        path = write_audio_only(folder / "song.mp4", seconds=2)
    elif kind == "still-image":
        path = folder / "photo.mp4"
        Image.new("RGB", (320, 240), "teal").save(path, format="JPEG")
    elif kind == "truncated":
        whole = faststart_copy(make_video("whole.mp4", seconds=3), folder / "whole-faststart.mp4")
        path = folder / "cut.mp4"
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    elif kind == "truncated-index":
        whole = make_video("whole.mp4", seconds=3)
        path = folder / "cut.mp4"
        path.write_bytes(whole.read_bytes()[:-2000])
    else:
        raise ValueError(kind)
    return path


BAD_FILES = {
    "zero-byte": ("empty", "The file is empty"),
    "not-a-video": ("not_video", "not a video"),
    "audio-only": ("audio_only", "sound but no picture"),
    "still-image": ("still_image", "still picture"),
    "truncated": ("truncated", "incomplete"),
    "truncated-index": ("not_video", "not a video"),
}


@pytest.fixture
def uploader_client(client_for, owner, media_root, upload_tmp):
    return client_for(owner)


def assert_nothing_stored(media_root: Path, upload_tmp: Path) -> None:
    assert Video.objects.count() == 0
    assert files_under(media_root) == []
    assert files_under(upload_tmp) == []


@pytest.mark.parametrize("door", [PAGE, API])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_get_a_clear_error_and_leave_nothing(
    uploader_client, door, kind, make_video, tmp_path, media_root, upload_tmp
):
    code, words = BAD_FILES[kind]
    response = post_upload(uploader_client, door, make_bad_file(kind, tmp_path / "bad", make_video))
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == code
    assert words in body["message"]
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.django_db
def test_page_and_api_say_the_same_thing(uploader_client, make_video, tmp_path):
    bad = make_bad_file("audio-only", tmp_path / "bad", make_video)
    assert error_message(post_upload(uploader_client, PAGE, bad)) == error_message(
        post_upload(uploader_client, API, bad)
    )


@pytest.mark.parametrize("door", [PAGE, API])
def test_a_video_over_the_duration_limit_is_refused(
    uploader_client, door, make_video, settings, media_root, upload_tmp
):
    settings.HYDRA_MAX_DURATION_SECONDS = 2
    response = post_upload(uploader_client, door, make_video(seconds=3, fps=10))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_long"
    assert "limit is 0:02" in error_message(response)
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.parametrize("door", [PAGE, API])
def test_an_upload_declared_over_the_limit_is_refused_with_413_unread(
    uploader_client, door, make_video, settings, media_root, upload_tmp
):
    clip = make_video(seconds=3, width=320, height=240, pattern="noise")
    settings.HYDRA_MAX_UPLOAD_BYTES = 1024  # Content-Length alone is over the limit: the body is never parsed
    response = post_upload(uploader_client, door, clip)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("too_large", "This file is larger than the 1 KiB upload limit.")
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.parametrize("door", [PAGE, API])
def test_an_upload_growing_past_the_limit_is_stopped_with_413(
    uploader_client, door, make_video, settings, media_root, upload_tmp
):
    clip = make_video(seconds=3, width=320, height=240, pattern="noise")
    # Content-Length is within the slack for form fields, so the handler must count the file's bytes as they come.
    settings.HYDRA_MAX_UPLOAD_BYTES = clip.stat().st_size - 1
    response = post_upload(uploader_client, door, clip)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert_nothing_stored(media_root, upload_tmp)


def test_the_page_without_javascript_shows_the_error_in_the_form(uploader_client, make_video, tmp_path):
    bad = make_bad_file("audio-only", tmp_path / "bad", make_video)
    with bad.open("rb") as handle:
        response = uploader_client.post(reverse("videos:upload"), {"title": "x", "file": handle})
    assert response.status_code == 400
    assert "This file has sound but no picture" in response.content.decode()


def test_a_missing_file_is_explained(uploader_client):
    response = uploader_client.post("/api/videos/", {"title": "no file"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["file"]
    page = uploader_client.post(reverse("videos:upload"), {"title": "x"}, headers={"accept": "application/json"})
    assert page.json()["error"]["message"] == "Choose a video file to upload."


@pytest.mark.parametrize("door", [PAGE, API])
def test_a_good_upload_is_stored_under_a_server_name_and_transcoded(
    uploader_client, door, make_video, media_root, django_capture_on_commit_callbacks
):
    clip = make_video("../../evil name.mov", seconds=2, fps=12, width=320, height=240, audio=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(uploader_client, door, clip, title="  Holiday  ")
    assert response.status_code in (201, 302)
    video = Video.objects.get()
    assert video.title == "Holiday"
    assert video.original_filename == "evil name.mov"
    assert video.original.name == f"originals/{video.storage_key}.mp4"
    assert (video.container_extension, video.video_codec, video.audio_codec) == ("mp4", "h264", "aac")
    assert (video.width, video.height, video.fps, video.duration_ms) == (320, 240, 12.0, 2000)
    assert video.status == Video.Status.READY, video.failure_reason
    assert (video.rendition_width, video.rendition_height, video.rendition_fps) == (320, 240, 12.0)
    assert video.rendition_duration_ms == 2000
    stored = {path.relative_to(media_root).as_posix() for path in files_under(media_root)}
    key, media_key = video.storage_key, video.media_key
    assert stored == {f"originals/{key}.mp4", f"renditions/{media_key}.mp4", f"posters/{media_key}.jpg"}


def test_the_api_upload_answers_with_the_video(uploader_client, make_video):
    response = post_upload(uploader_client, API, make_video(seconds=1, fps=10))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "processing" and body["status_label"] == "Processing"
    assert body["player_url"].endswith(f"/v/{body['slug']}/")
    assert body["stream_url"] is None
