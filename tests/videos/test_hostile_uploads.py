"""Hostile uploads (issue 13, items 1 and 8): files built to cost the server far more than they cost the sender.

Each attack is made here as an outsider would make it from the public docs (a small file, a
crafted header, an odd name, a huge field) and sent through the page and the API. Every one
gets a clear 4xx in JSON, or is accepted and then fails with a message, and leaves nothing
behind: no rows for refused files, no temporary or ``.part`` files, no rendition.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.videos.conftest import files_under
from videos import media
from videos.models import Video
from videos.synthetic import write_video

PAGE = "page"
API = "api"


def post_upload(client, door: str, path: Path, *, name: str | None = None, description: str = ""):
    upload = SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="video/mp4")
    fields = {"title": "", "description": description, "file": upload}
    if door == PAGE:
        return client.post(reverse("videos:upload"), fields, headers={"accept": "application/json"})
    return client.post("/api/videos/", fields)


def sparse_video(path: Path, *, seconds: float, declared_fps: int = 60, frames: int = 3) -> Path:
    """A few frames spread over ``seconds`` in Matroska, which reports the declared rate as the average."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=declared_fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, declared_fps)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), index * 60, np.uint8), format="rgb24")
            frame.pts = round(index * seconds / (frames - 1) * declared_fps)
            frame.time_base = Fraction(1, declared_fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_with_sar(path: Path, *, width: int, height: int, sar: Fraction) -> Path:
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.sample_aspect_ratio = sar
        stream.options = {"preset": "ultrafast"}
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), index * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mixed_size_avi(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """MJPEG in AVI: every frame is a JPEG with its own size, whatever the header says."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=2)
        stream.width, stream.height = sizes[0]
        stream.pix_fmt = "yuvj420p"
        for index, (width, height) in enumerate(sizes):
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
            encoder.time_base = Fraction(1, 2)
            picture = np.full((height, width, 3), 40 + index * 30, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")
            frame.pts = index
            for packet in [*encoder.encode(frame), *encoder.encode()]:
                packet.stream = stream
                packet.pts = packet.dts = index
                packet.time_base = Fraction(1, 2)
                container.mux(packet)
    return path


@pytest.fixture
def uploader_client(client_for, owner, media_root, upload_tmp):
    return client_for(owner)


def assert_nothing_stored(media_root: Path, upload_tmp: Path) -> None:
    assert Video.objects.count() == 0
    assert files_under(media_root) == []
    assert files_under(upload_tmp) == []


def assert_no_leftovers(media_root: Path, upload_tmp: Path) -> None:
    """A failed video keeps its row and original (its uploader sees why it failed); nothing else stays."""
    left = [path.relative_to(media_root).parts[0] for path in files_under(media_root)]
    assert set(left) <= {"originals"}, left
    assert not [path for path in files_under(media_root) if path.suffix == ".part"]
    assert files_under(upload_tmp) == []


@pytest.mark.parametrize("door", [PAGE, API])
@pytest.mark.parametrize(
    ("seconds", "code", "words"),
    [(60, "sparse_frames", "3,601 frames to encode"), (14_000, "too_many_frames", "840,001 frames")],
)
def test_a_frame_bomb_is_refused_before_transcoding(
    uploader_client, door, seconds, code, words, tmp_path, media_root, upload_tmp, settings
):
    bomb = sparse_video(tmp_path / "bomb.mkv", seconds=seconds)
    assert bomb.stat().st_size < 20_000, "a few kilobytes"
    response = post_upload(uploader_client, door, bomb)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], words in error["message"]) == (code, True), error
    assert_nothing_stored(media_root, upload_tmp)


def test_a_sparse_long_bomb_under_the_frame_limit_is_still_refused(uploader_client, tmp_path, media_root, upload_tmp):
    bomb = sparse_video(tmp_path / "bomb.mkv", seconds=7_000, declared_fps=30)  # 210,000 frames from 3
    response = post_upload(uploader_client, API, bomb)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sparse_frames"
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.parametrize("door", [PAGE, API])
def test_frames_to_produce_are_limited(uploader_client, door, tmp_path, media_root, upload_tmp, settings):
    settings.HYDRA_MAX_RENDITION_FRAMES = 50
    clip = write_video(tmp_path / "clip.mp4", seconds=3, fps=24)  # 72 frames
    response = post_upload(uploader_client, door, clip)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_many_frames" and "72 frames" in error["message"] and "50" in error["message"]
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.parametrize(
    ("width", "height", "sar", "code"),
    [
        (2100, 720, Fraction(4, 1), "too_big_picture"),  # 8400 pixels wide as shown
        (320, 240, Fraction(12, 1), "bad_aspect_ratio"),  # 16:1 as shown
        (320, 240, Fraction(1, 16), "bad_aspect_ratio"),  # a sliver
    ],
)
def test_aspect_ratio_bombs_are_refused(uploader_client, width, height, sar, code, tmp_path, media_root, upload_tmp):
    bomb = video_with_sar(tmp_path / "sar.mkv", width=width, height=height, sar=sar)
    response = post_upload(uploader_client, API, bomb)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert_nothing_stored(media_root, upload_tmp)


def test_a_moderate_sample_aspect_ratio_still_makes_a_square_pixel_rendition(
    uploader_client, tmp_path, media_root, upload_tmp, django_capture_on_commit_callbacks
):
    clip = video_with_sar(tmp_path / "anamorphic.mkv", width=320, height=240, sar=Fraction(2, 1))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(uploader_client, API, clip)
    assert response.status_code == 201
    video = Video.objects.get()
    assert (video.status, video.rendition_width, video.rendition_height) == (Video.Status.READY, 640, 240)


def test_a_huge_frame_after_a_small_first_frame_fails_cleanly_without_allocating_it(
    uploader_client, tmp_path, media_root, upload_tmp, django_capture_on_commit_callbacks
):
    bomb = mixed_size_avi(tmp_path / "mixed.avi", [(320, 240)] * 3 + [(4000, 4000)] + [(320, 240)] * 2)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(uploader_client, API, bomb)
    assert response.status_code == 201, "only the whole decode sees the later frames"
    video = Video.objects.get()
    assert video.status == Video.Status.FAILED
    assert f"{media.MAX_FRAME_PIXELS:,} pixels" in video.failure_reason
    assert not video.rendition and not video.poster
    assert_no_leftovers(media_root, upload_tmp)


def test_frames_of_changing_but_allowed_sizes_transcode_to_one_size(
    uploader_client, tmp_path, media_root, upload_tmp, django_capture_on_commit_callbacks
):
    clip = mixed_size_avi(tmp_path / "mixed.avi", [(320, 240)] * 3 + [(640, 480)] * 3 + [(160, 120)] * 2)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(uploader_client, API, clip)
    assert response.status_code == 201
    video = Video.objects.get()
    assert video.status in (Video.Status.READY, Video.Status.FAILED)
    if video.status == Video.Status.READY:
        with av.open(video.rendition.path) as rendition:
            sizes = {(frame.width, frame.height) for frame in rendition.decode(video=0)}
        assert sizes == {(video.rendition_width, video.rendition_height)}
    else:
        assert_no_leftovers(media_root, upload_tmp)
    assert not [path for path in files_under(media_root) if path.suffix == ".part"]


@pytest.mark.parametrize("door", [PAGE, API])
@pytest.mark.parametrize(
    "name",
    ["clip." + "x" * 250, "clip." + "動画" * 45, "動画" * 45 + ".mp4", "a" * 300 + ".mp4"],
    ids=["250-char-extension", "90-cjk-character-extension", "90-cjk-character-stem", "300-char-stem"],
)
def test_long_file_names_are_accepted_and_shortened(uploader_client, door, name, tmp_path, media_root, upload_tmp):
    clip = write_video(tmp_path / "clip.mp4", seconds=1, fps=10)
    response = post_upload(uploader_client, door, clip, name=name)
    assert response.status_code == 201, response.content
    video = Video.objects.get()
    assert 0 < len(video.original_filename) <= 255
    assert video.original_filename[:4] == name[:4]
    assert video.title and len(video.title) <= 200
    assert files_under(upload_tmp) == []


@pytest.mark.parametrize("door", [PAGE, API])
@pytest.mark.parametrize("size", [5_001, 2_000_000, 3_000_000])
def test_huge_descriptions_get_a_json_error_and_nothing_is_stored(
    uploader_client, door, size, tmp_path, media_root, upload_tmp
):
    clip = write_video(tmp_path / "clip.mp4", seconds=1, fps=10)
    response = post_upload(uploader_client, door, clip, description="d" * size)
    assert response.status_code in (400, 413), response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["message"]
    assert_nothing_stored(media_root, upload_tmp)


@pytest.mark.parametrize("door", [PAGE, API])
def test_uploads_per_hour_are_limited(uploader_client, door, tmp_path, media_root, upload_tmp, settings):
    settings.HYDRA_UPLOADS_PER_HOUR = 2
    clip = write_video(tmp_path / "clip.mp4", seconds=1, fps=10)
    assert [post_upload(uploader_client, door, clip).status_code for _ in range(2)] == [201, 201]
    response = post_upload(uploader_client, door, clip)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "2 videos in the last hour" in response.json()["error"]["message"]
    assert Video.objects.count() == 2


@pytest.mark.parametrize("door", [PAGE, API])
def test_the_storage_quota_is_enforced(uploader_client, door, tmp_path, media_root, upload_tmp, settings):
    clip = write_video(tmp_path / "clip.mp4", seconds=1, fps=10)
    settings.HYDRA_UPLOAD_QUOTA_BYTES = clip.stat().st_size * 2 - 1
    assert post_upload(uploader_client, door, clip).status_code == 201
    response = post_upload(uploader_client, door, clip)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert "Delete a video" in response.json()["error"]["message"]
    assert Video.objects.count() == 1
    assert files_under(upload_tmp) == []


def test_a_raw_h264_stream_is_a_video_not_a_single_picture(
    uploader_client, tmp_path, media_root, upload_tmp, django_capture_on_commit_callbacks
):
    """Issue 13, item 8: an elementary stream has no timestamps; it is timed by its frame rate."""
    raw = write_video(tmp_path / "camera.h264", seconds=2, fps=24, container_format="h264")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(uploader_client, API, raw)
    assert response.status_code == 201, response.content
    video = Video.objects.get()
    assert video.status == Video.Status.READY, video.failure_reason
    assert abs(video.duration_ms - 2000) <= 100 and abs(video.rendition_duration_ms - 2000) <= 100
