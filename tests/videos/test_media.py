"""The PyAV layer: what probe accepts and rejects, and what the rendition looks like inside."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from inference.sampling import sample_times_ms
from videos import media
from videos.synthetic import write_audio_only, write_video


def faststart_copy(source: Path, destination: Path) -> Path:
    """Remux with the index at the front, like files from most cameras and editors."""
    with av.open(str(source)) as src, av.open(str(destination), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return destination


def test_probe_reads_container_streams_and_timing(make_video):
    result = media.probe(make_video(seconds=2, fps=25, width=320, height=240, audio=True), max_duration_seconds=60)
    assert (result.video_codec, result.audio_codec, result.extension) == ("h264", "aac", "mp4")
    assert (result.width, result.height, result.fps, result.duration_ms) == (320, 240, 25.0, 2000)


def test_probe_accepts_other_codecs_and_containers(make_video):
    result = media.probe(make_video("clip.webm", seconds=1, fps=10, codec="libvpx-vp9"), max_duration_seconds=60)
    assert (result.video_codec, result.extension) == ("vp9", "mkv")


def zero_byte_file(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def text_file_named_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return path


@pytest.mark.parametrize(
    ("make_file", "code"),
    [
        (zero_byte_file, "empty"),
        (text_file_named_mp4, "not_video"),
        (lambda folder: write_audio_only(folder / "tone.m4a"), "audio_only"),
    ],
    ids=["zero-byte", "text-named-mp4", "audio-only"],
)
def test_probe_rejects_files_that_are_not_videos(tmp_path, make_file, code):
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(make_file(tmp_path), max_duration_seconds=60)
    assert caught.value.code == code
    assert caught.value.message


def test_probe_rejects_a_still_picture(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), "red").save(path)
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(path, max_duration_seconds=60)
    assert caught.value.code == "still_image"


def test_probe_notices_a_file_cut_short_even_with_its_index_at_the_front(make_video, tmp_path):
    whole = faststart_copy(make_video(seconds=3), tmp_path / "whole.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert media.probe(whole, max_duration_seconds=60).duration_ms == 3000
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(cut, max_duration_seconds=60)
    assert caught.value.code == "truncated"
    assert "incomplete" in caught.value.message


def test_probe_rejects_a_file_cut_before_its_index(make_video, tmp_path):
    whole = make_video(seconds=3)  # index (moov) at the end, as encoders write it
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(cut, max_duration_seconds=60)
    assert caught.value.code == "not_video"


def test_probe_rejects_a_video_over_the_duration_limit(make_video):
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(make_video(seconds=3, fps=10), max_duration_seconds=2)
    assert caught.value.code == "too_long"
    assert "0:03" in caught.value.message and "0:02" in caught.value.message


def test_probe_reads_from_an_open_file(make_video):
    with make_video(seconds=1, fps=10).open("rb") as handle:
        assert media.probe(handle, max_duration_seconds=60).duration_ms == 1000


@pytest.mark.parametrize(
    ("size", "sar", "max_height", "expected"),
    [
        ((1920, 1080), Fraction(1), 720, (1280, 720)),
        ((320, 240), Fraction(1), 720, (320, 240)),
        ((176, 144), Fraction(128, 117), 720, (192, 144)),  # anamorphic: widened to square pixels
        ((641, 361), Fraction(1), 720, (640, 360)),  # odd sides become even
        ((720, 1280), Fraction(1), 720, (406, 720)),  # portrait
    ],
)
def test_rendition_size_is_even_square_pixelled_and_capped(size, sar, max_height, expected):
    assert media.rendition_size(*size, sar, max_height) == expected


def rendition_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        keyframes_ms, count = [], 0
        for frame in container.decode(stream):
            if frame.key_frame:
                keyframes_ms.append(round(frame.time * 1000))
            count += 1
        return {
            "codec": context.name,
            "pix_fmt": context.pix_fmt,
            "size": (context.width, context.height),
            "sar": context.sample_aspect_ratio,
            "colour": (context.color_primaries, context.color_trc, context.colorspace, context.color_range),
            "rate": stream.average_rate,
            "keyframes_ms": keyframes_ms,
            "frames": count,
            "audio": [s.codec_context.name for s in container.streams.audio],
        }


def test_transcode_writes_tagged_h264_with_a_keyframe_at_every_sample_time(make_video, tmp_path):
    source = make_video(seconds=4, fps=25, width=352, height=288, codec="mpeg4", audio=True)
    info = media.transcode(source, tmp_path / "out.part", max_height=240, keyframe_seconds=1.0)
    facts = rendition_facts(tmp_path / "out.part")
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["size"] == (info.width, info.height) == (294, 240)
    assert facts["sar"] in (None, Fraction(1))
    assert facts["colour"] == (1, 1, 1, 1)  # BT.709 primaries, transfer, matrix; limited range
    assert facts["rate"] == 25 and facts["frames"] == info.frame_count == 100
    assert facts["audio"] == ["aac"]
    assert facts["keyframes_ms"] == sample_times_ms(info.duration_ms, info.fps, 1000) == [0, 1000, 2000, 3000]
    data = (tmp_path / "out.part").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: the index comes before the media data"


def test_transcode_keyframes_match_sample_times_at_ntsc_rates(tmp_path):
    source = tmp_path / "ntsc.mkv"
    # 29.97 fps: sample frames are not multiples of 30, the keyframes must follow them anyway.
    with av.open(str(source), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(300):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index % 256]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = media.transcode(source, tmp_path / "out.part", max_height=720, keyframe_seconds=1.0)
    assert info.fps == pytest.approx(30000 / 1001)
    facts = rendition_facts(tmp_path / "out.part")
    assert facts["keyframes_ms"] == sample_times_ms(info.duration_ms, info.fps, 1000)


def test_poster_is_a_jpeg_of_the_rendition_size(make_video, tmp_path):
    info = media.transcode(make_video(seconds=2), tmp_path / "r.part", max_height=720, keyframe_seconds=1.0)
    media.write_poster(tmp_path / "r.part", tmp_path / "poster.jpg", at_seconds=1.0)
    with Image.open(tmp_path / "poster.jpg") as poster:
        assert poster.format == "JPEG" and poster.size == (info.width, info.height)


def test_write_video_helper_makes_distinct_frames(tmp_path):
    # Guards the fixtures the other tests rely on: a clip whose frames differ over time.
    path = write_video(tmp_path / "bars.mp4", seconds=2, fps=4)
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert abs(int(frames[0].sum()) - int(frames[-1].sum())) > 0


def test_a_playlist_is_refused_without_opening_what_it_names(tmp_path, make_video):
    secret = make_video("secret.ts", seconds=1, container_format="mpegts")
    playlist = tmp_path / "upload.m3u8"  # uploads keep their extension in Django's temporary file names
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n")
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(playlist, max_duration_seconds=60)
    assert caught.value.code == "not_video"


def test_a_text_file_is_not_rendered_as_a_video(tmp_path):
    text = tmp_path / "notes.upload.txt"
    text.write_text("hello world\n" * 200)  # FFmpeg's "tty" demuxer would turn this into ANSI-art video
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(text, max_duration_seconds=60)
    assert caught.value.code == "not_video"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to attach cover art")
def test_music_with_cover_art_is_audio_only(tmp_path):
    song = write_audio_only(tmp_path / "song.m4a", seconds=1)
    cover = tmp_path / "cover.jpg"
    Image.new("RGB", (64, 64), "navy").save(cover)
    with_art = tmp_path / "song-with-art.m4a"
    # Written with PyAV the cover came back as a plain video track, so the file is made as taggers make it.
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", song, "-i", cover, "-map", "0", "-map", "1", "-c", "copy",
         "-disposition:v:0", "attached_pic", with_art],
        check=True,
    )  # fmt: skip
    with av.open(str(with_art)) as check:
        assert check.streams.video, "the cover is stored as a video stream"
    with pytest.raises(media.MediaRejected) as caught:
        media.probe(with_art, max_duration_seconds=60)
    assert caught.value.code == "audio_only"


@pytest.mark.parametrize(
    ("source_fps", "expected"),
    [
        (25.0, Fraction(25)),
        (29.97002997, Fraction(30000, 1001)),
        (29.87, Fraction(30000, 1001)),  # a phone's slightly variable rate
        (23.976, Fraction(24000, 1001)),
        (15.0, Fraction(15)),
        (12.4, Fraction(12)),
        (120.0, Fraction(60)),
        (0.0, Fraction(30)),
        (float("nan"), Fraction(30)),
    ],
)
def test_rendition_rate_is_constant_and_standard(source_fps, expected):
    assert media.rendition_rate(source_fps) == expected


def test_a_variable_frame_rate_source_becomes_constant(tmp_path):
    source = tmp_path / "phone.mkv"
    rng = np.random.default_rng(3)
    with av.open(str(source), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for index in range(90):  # about 3 s with gaps of 20 to 47 ms between frames
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 2, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += int(rng.integers(20, 48))
        for packet in stream.encode():
            container.mux(packet)
    info = media.transcode(source, tmp_path / "out.part", max_height=720, keyframe_seconds=1.0)
    with av.open(str(tmp_path / "out.part")) as rendition:
        times = [frame.time for frame in rendition.decode(video=0)]
    steps = {round(later - earlier, 6) for earlier, later in itertools.pairwise(times)}
    assert steps == {round(1 / info.fps, 6)}, "every frame lasts exactly one frame period"
    assert info.frame_count == len(times)
    assert abs(info.duration_ms - pts) <= 1000 / info.fps + 1
