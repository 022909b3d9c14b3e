"""Reading and writing video files with PyAV. Knows nothing of Django models or HTTP.

``probe`` decides whether a file is a video Hydra can use, from its content alone (never
its name or Content-Type). ``transcode`` writes the one web rendition every browser and
the server analyse: H.264 yuv420p, BT.709 limited range tagged, square pixels, constant
frame rate, even dimensions, a keyframe at every sample time, AAC audio, MP4 with the
index at the front (faststart) so that ``<video>`` can seek before it has the whole file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import av.error

from videos.formatting import format_clock

# Largest picture side accepted, so a crafted header cannot make the transcoder allocate gigabytes.
MAX_DIMENSION = 8192
# Largest picture of any frame (4096x2304; 4K UHD fits). The decoder itself refuses bigger frames
# (FFmpeg's max_pixels), so a file whose first frame is small and a later one is 12000x12000
# fails before the picture is allocated, in the probe and in the transcoder alike.
MAX_FRAME_PIXELS = 4096 * 2304
# Widest (or tallest) shape accepted once the sample aspect ratio is applied: a 4:1 SAR on a
# 4096-wide picture would otherwise plan a 16384x720 rendition.
MAX_ASPECT_RATIO = 8
# Highest frame rate kept in the rendition; faster sources are resampled to it.
MAX_RENDITION_FPS = 60
AUDIO_SAMPLE_RATE = 48000
AUDIO_BITRATE = 128_000
POSTER_QUALITY = 85
PROGRESS_EVERY_FRAMES = 250
# FFmpeg enum values for the colour tags of the rendition.
_BT709 = 1
_LIMITED_RANGE = 1

# The demuxers FFmpeg may use on uploads: video containers, plus a few audio and picture formats
# that are only opened so that the person is told precisely why their file is not a video.
ALLOWED_DEMUXERS = (
    *("mov", "matroska", "avi", "flv", "mpegts", "mpeg", "ogg", "asf", "gif", "mxf", "dv", "m4v", "h264", "hevc"),
    *("mp3", "wav", "flac", "aac"),
    *("jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe"),
)
_EXTENSIONS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "matroska,webm": "mkv",
    "avi": "avi",
    "flv": "flv",
    "mpegts": "ts",
    "mpeg": "mpg",
    "ogg": "ogv",
    "asf": "wmv",
    "gif": "gif",
}


class MediaRejected(Exception):
    """A file Hydra will not accept; ``message`` is written for the person who uploaded it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ProbeResult:
    container: str
    extension: str
    video_codec: str
    audio_codec: str
    width: int
    height: int
    sample_aspect_ratio: Fraction
    fps: float
    duration_ms: int


@dataclass(frozen=True)
class RenditionInfo:
    width: int
    height: int
    fps: float
    duration_ms: int
    frame_count: int
    has_audio: bool


@dataclass(frozen=True)
class FrameLimits:
    """How much transcoding work one upload may ask for (settings HYDRA_MAX_RENDITION_FRAMES and
    HYDRA_MAX_FRAME_DUPLICATION, docs/videos.md).

    ``max_frames``: frames the rendition may have (duration x its frame rate).
    ``max_duplication``: rendition frames per frame stored in the file. A few kilobytes holding
    three frames 60 s apart with a declared rate of 60 fps would otherwise plan 3,600 encoded
    frames; ordinary variable-rate recordings stay near 1.
    """

    max_frames: int = 4 * 3600 * 30
    max_duplication: float = 10.0


def probe(
    source: str | Path | IO[bytes], *, max_duration_seconds: float, frame_limits: FrameLimits | None = None
) -> ProbeResult:
    """Open, demux and decode the start of ``source``; raise ``MediaRejected`` unless it is a whole, usable video.

    Every packet of the video stream is read (not decoded), so a file cut short is noticed
    even when its header promises more, and the rendition's frame count is planned from
    what the file holds, not what it declares.
    """
    try:
        container = open_input(source)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if _is_empty(source):
            raise MediaRejected("empty", "The file is empty (0 bytes).") from exc
        raise MediaRejected(
            "not_video", "This file is not a video Hydra can read. Upload an MP4, WebM, MOV or MKV file."
        ) from exc
    with container:
        result = _probe_open_container(container, max_duration_seconds, frame_limits or FrameLimits())
    # Decoding starts again from a fresh open: raw elementary streams (.h264) cannot seek back.
    if not isinstance(source, str | Path):
        source.seek(0)
    with open_input(source) as again:
        _decode_first_frame(main_video_stream(again))
    return result


def open_input(source: str | Path | IO[bytes]) -> av.container.InputContainer:
    """Open a user's file with only the demuxers listed in ``ALLOWED_DEMUXERS``.

    FFmpeg picks a demuxer from the content and also from the file name, and some of its
    demuxers read other files: a playlist (hls, concat) would make the server open any
    path or URL it names, and ``.txt`` selects the "tty" demuxer, which renders text as video.
    """
    return av.open(
        str(source) if isinstance(source, Path) else source,
        mode="r",
        options={"format_whitelist": ",".join(ALLOWED_DEMUXERS)},
    )


def main_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream: cover art attached to music files does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _is_empty(source: str | Path | IO[bytes]) -> bool:
    if isinstance(source, str | Path):
        return Path(source).stat().st_size == 0
    position = source.tell()
    source.seek(0, 2)
    empty = source.tell() == 0
    source.seek(position)
    return empty


def _probe_open_container(
    container: av.container.InputContainer, max_duration_seconds: float, frame_limits: FrameLimits
) -> ProbeResult:
    format_name = container.format.name
    stream = main_video_stream(container)
    if stream is None:
        if container.streams.audio:
            raise MediaRejected("audio_only", "This file has sound but no picture. Upload a video file.")
        raise MediaRejected("not_video", "This file has no video in it.")
    if format_name.endswith("_pipe"):
        raise MediaRejected("still_image", "This is a still picture, not a video.")
    codec = stream.codec_context
    if not codec.width or not codec.height:
        raise MediaRejected("not_video", "This file's video has no picture size; it may be damaged.")
    if codec.width > MAX_DIMENSION or codec.height > MAX_DIMENSION:
        raise MediaRejected(
            "too_big_picture",
            f"The picture is {codec.width}x{codec.height}; the largest side allowed is {MAX_DIMENSION} pixels.",
        )
    declared_seconds = _declared_seconds(container, stream)
    if declared_seconds and declared_seconds > max_duration_seconds:
        raise MediaRejected(
            "too_long",
            f"This video is {format_clock(declared_seconds * 1000)} long; the limit is "
            f"{format_clock(max_duration_seconds * 1000)}.",
        )
    packets, end_seconds = _demux_span(container, stream)
    if packets < 2:
        raise MediaRejected("still_image", "This file holds a single picture, not a video.")
    if declared_seconds and end_seconds < declared_seconds * 0.97 - 0.1:
        raise MediaRejected(
            "truncated",
            f"This file is incomplete: it should last {format_clock(declared_seconds * 1000)} but stops after "
            f"{format_clock(end_seconds * 1000)}. The upload or the export may have been cut short; try again.",
        )
    if end_seconds > max_duration_seconds:
        raise MediaRejected(
            "too_long",
            f"This video is {format_clock(end_seconds * 1000)} long; "
            f"the limit is {format_clock(max_duration_seconds * 1000)}.",
        )
    sar = Fraction(codec.sample_aspect_ratio or 1) or Fraction(1)
    _check_display_shape(codec.width, codec.height, sar)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    _check_planned_frames(float(rate) if rate else 0.0, end_seconds, packets, frame_limits)
    return ProbeResult(
        container=format_name,
        extension=_EXTENSIONS.get(format_name, format_name.split(",")[0][:8]),
        video_codec=codec.name,
        audio_codec=container.streams.audio[0].codec_context.name if container.streams.audio else "",
        width=codec.width,
        height=codec.height,
        sample_aspect_ratio=sar,
        fps=float(rate) if rate else 0.0,
        duration_ms=round(end_seconds * 1000),
    )


def _declared_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _demux_span(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, float]:
    """Count the video packets and find where the last one ends, in seconds from the first."""
    count = 0
    first: float | None = None
    end = 0.0
    untimed = _UntimedClock(stream)
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                # A raw elementary stream (.h264, .hevc) carries no timestamps: time it by frame count.
                start = untimed.next_seconds()
                count += 1
                first = start if first is None else first
                end = max(end, start + untimed.step_seconds)
                continue
            count += 1
            start = float(packet.pts * packet.time_base)
            first = start if first is None else min(first, start)
            end = max(end, start + float((packet.duration or 0) * packet.time_base))
    except av.error.FFmpegError as exc:
        raise MediaRejected(
            "truncated", "This file is damaged or incomplete; it could not be read to the end."
        ) from exc
    return count, max(0.0, end - (first or 0.0))


def _check_display_shape(width: int, height: int, sar: Fraction) -> None:
    """Refuse pictures whose displayed shape (sample aspect ratio applied) is huge or extreme."""
    display_width = width * sar
    shown = f"{width}x{height} with pixels {sar.numerator}:{sar.denominator} wide"
    if width * height > MAX_FRAME_PIXELS:
        raise MediaRejected(
            "too_big_picture", f"The picture is {width}x{height}; the most allowed is {MAX_FRAME_PIXELS:,} pixels."
        )
    if display_width > MAX_DIMENSION:
        raise MediaRejected(
            "too_big_picture",
            f"The picture ({shown}) is {math.ceil(display_width)} pixels wide as shown; "
            f"the largest side allowed is {MAX_DIMENSION} pixels.",
        )
    if not Fraction(1, MAX_ASPECT_RATIO) <= display_width / height <= MAX_ASPECT_RATIO:
        raise MediaRejected(
            "bad_aspect_ratio",
            f"The picture ({shown}) is too narrow or too wide; at most {MAX_ASPECT_RATIO}:1 either way is allowed.",
        )


def planned_frame_count(source_fps: float, seconds: float) -> int:
    """Frames the rendition will have: its constant rate (``rendition_rate``) times the duration."""
    return math.ceil(float(rendition_rate(source_fps)) * seconds)


def _check_planned_frames(source_fps: float, seconds: float, packets: int, limits: FrameLimits) -> None:
    planned = planned_frame_count(source_fps, seconds)
    if planned > limits.max_frames:
        raise MediaRejected(
            "too_many_frames",
            f"This video would need {planned:,} frames at {float(rendition_rate(source_fps)):g} per second; "
            f"the limit is {limits.max_frames:,}. Export it shorter or at a lower frame rate.",
        )
    # One second of slack so that very short clips are never refused for rounding.
    if planned > limits.max_duplication * packets + float(rendition_rate(source_fps)):
        raise MediaRejected(
            "sparse_frames",
            f"This file holds {packets:,} frames but declares {source_fps:g} frames per second over "
            f"{format_clock(seconds * 1000)}, which would mean {planned:,} frames to encode. "
            "Export it again at its real frame rate.",
        )


def limit_frame_pixels(stream: av.video.stream.VideoStream) -> None:
    """Make the decoder refuse any frame larger than ``MAX_FRAME_PIXELS`` before allocating it (every frame,
    not just the first: some codecs, MJPEG for one, may change the picture size at any frame)."""
    stream.codec_context.options = {**stream.codec_context.options, "max_pixels": str(MAX_FRAME_PIXELS)}


class _UntimedClock:
    """Timestamps for a stream without any (raw H.264/HEVC): frame n is shown at n / the codec's frame rate."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        rate = stream.guessed_rate or stream.average_rate or Fraction(25)
        self.step_seconds = float(1 / Fraction(rate))
        self.step_ticks = max(1, round(1 / (Fraction(rate) * stream.time_base))) if stream.time_base else 1
        self.index = 0

    def next_seconds(self) -> float:
        self.index += 1
        return (self.index - 1) * self.step_seconds

    def next_pts(self) -> int:
        self.index += 1
        return (self.index - 1) * self.step_ticks


def _decode_first_frame(stream: av.video.stream.VideoStream) -> None:
    limit_frame_pixels(stream)
    try:
        next(stream.container.decode(stream))
    except (av.error.FFmpegError, StopIteration) as exc:
        raise MediaRejected("undecodable", "The video in this file cannot be decoded; it may be damaged.") from exc


# --------------------------------------------------------------------------- rendition


def rendition_size(width: int, height: int, sample_aspect_ratio: Fraction, max_height: int) -> tuple[int, int]:
    """Square-pixel, even-sided size no taller than ``max_height`` that keeps the display aspect ratio."""
    display_width = width * (sample_aspect_ratio if sample_aspect_ratio > 0 else 1)
    out_height = min(height, max_height)
    out_height -= out_height % 2
    out_width = math.floor(display_width * out_height / height / 2 + Fraction(1, 2)) * 2
    return max(2, int(out_width)), max(2, out_height)


STANDARD_RATES = tuple(
    Fraction(rate) for rate in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60")
)


def rendition_rate(source_fps: float) -> Fraction:
    """A constant frame rate for the rendition: the standard rate nearest the source's average (phones record
    at a slightly variable rate), else the whole number nearest it; never above ``MAX_RENDITION_FPS``."""
    if not source_fps or not math.isfinite(source_fps) or source_fps <= 0:
        return Fraction(30)
    nearest = min(STANDARD_RATES, key=lambda rate: abs(float(rate) - source_fps))
    if abs(float(nearest) - source_fps) <= 0.02 * source_fps:
        return nearest
    return Fraction(max(1, min(round(source_fps), MAX_RENDITION_FPS)))


def is_keyframe_index(index: int, fps: Fraction, keyframe_seconds: float) -> bool:
    """Whether frame ``index`` is the frame nearest a multiple of ``keyframe_seconds``.

    This is the same rounding as ``inference.sampling.sample_times_ms``, so with the sample
    interval equal to the keyframe interval every sampled frame is an IDR frame and decoding
    it needs nothing before it.
    """
    step = float(fps) * keyframe_seconds
    nearest = round(index / step)
    return any(round(k * step) == index for k in (nearest - 1, nearest, nearest + 1) if k >= 0)


def transcode(
    source: str | Path,
    destination: str | Path,
    *,
    max_height: int,
    keyframe_seconds: float,
    on_progress: Callable[[int], None] | None = None,
) -> RenditionInfo:
    """Write the web rendition of ``source`` to ``destination`` (an MP4, whatever its name ends with).

    ``on_progress(frames_written)`` is called every ``PROGRESS_EVERY_FRAMES`` frames (the caller's heartbeat).
    """
    with open_input(source) as src:
        in_video = main_video_stream(src)
        limit_frame_pixels(in_video)
        in_audio = src.streams.audio[0] if src.streams.audio else None
        codec = in_video.codec_context
        rate = rendition_rate(float(in_video.average_rate or in_video.guessed_rate or 0))
        sar = Fraction(codec.sample_aspect_ratio or 1) or Fraction(1)
        width, height = rendition_size(codec.width, codec.height, sar, max_height)
        with av.open(str(destination), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = _VideoEncoder(out, in_video, rate, width, height, keyframe_seconds)
            audio = _AudioEncoder(out) if in_audio is not None else None
            streams = [in_video] + ([in_audio] if in_audio is not None else [])
            reported = 0
            for packet in src.demux(*streams):
                for frame in _decode(packet, in_video):
                    if packet.stream.index == in_video.index:
                        video.add(frame)
                    elif audio is not None:
                        audio.add(frame)
                if on_progress is not None and video.written - reported >= PROGRESS_EVERY_FRAMES:
                    reported = video.written
                    on_progress(reported)
            video.finish()
            if audio is not None:
                audio.finish()
    if video.written == 0:
        raise ValueError("the video decoded to no frames")
    return RenditionInfo(
        width=width,
        height=height,
        fps=float(rate),
        duration_ms=round(video.written * 1000 / float(rate)),
        frame_count=video.written,
        has_audio=in_audio is not None,
    )


def _decode(packet: av.Packet, in_video: av.video.stream.VideoStream) -> list[av.VideoFrame | av.AudioFrame]:
    """The packet's frames; a video frame the decoder refuses (over ``MAX_FRAME_PIXELS``, or damaged) ends the
    transcode with a message for the uploader instead of a bare FFmpeg error."""
    try:
        frames = packet.decode()
    except av.error.FFmpegError as exc:
        if packet.stream.index != in_video.index:
            raise
        raise MediaRejected(
            "bad_frame",
            f"A frame of this video could not be decoded: it is damaged, or larger than the "
            f"{MAX_FRAME_PIXELS:,} pixels allowed for every frame.",
        ) from exc
    for frame in frames:
        if packet.stream.index == in_video.index and (frame.width > MAX_DIMENSION or frame.height > MAX_DIMENSION):
            raise MediaRejected(
                "too_big_picture",
                f"A frame of this video is {frame.width}x{frame.height}; the largest side allowed is {MAX_DIMENSION}.",
            )
    return frames


class _VideoEncoder:
    """Scales, re-times to a constant rate and encodes H.264 with an IDR frame at every keyframe time."""

    def __init__(
        self,
        out: av.container.OutputContainer,
        in_video: av.video.stream.VideoStream,
        rate: Fraction,
        width: int,
        height: int,
        keyframe_seconds: float,
    ) -> None:
        self.out = out
        self.rate = rate
        self.keyframe_seconds = keyframe_seconds
        self.written = 0
        self.first_pts: int | None = None
        self.untimed = False
        self.clock = _UntimedClock(in_video)
        gop = max(1, round(float(rate) * keyframe_seconds))
        self.stream = out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        # The muxer may change the stream's time base when it writes the header; frames keep this one.
        self.frame_time_base = Fraction(1) / rate
        self.stream.time_base = self.frame_time_base
        context = self.stream.codec_context
        context.time_base = self.frame_time_base
        context.sample_aspect_ratio = Fraction(1)
        context.color_range = _LIMITED_RANGE
        context.color_primaries = context.color_trc = context.colorspace = _BT709
        self.stream.options = {
            "preset": "veryfast",
            "crf": "23",
            "profile": "high",
            # Forced IDR frames place the keyframes; g only stops x264 adding any between them.
            "g": str(gop + 1),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "forced-idr": "1",
            "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=tv",
        }
        self.graph = self._filter_graph(in_video, width, height)

    def _filter_graph(self, in_video: av.video.stream.VideoStream, width: int, height: int) -> av.filter.Graph:
        codec = in_video.codec_context
        sar = Fraction(codec.sample_aspect_ratio or 1) or Fraction(1)
        graph = av.filter.Graph()
        chain = [
            graph.add(
                "buffer",
                video_size=f"{codec.width}x{codec.height}",
                pix_fmt=str(int(av.video.format.VideoFormat(codec.pix_fmt or "yuv420p"))),
                time_base=str(in_video.time_base),
                pixel_aspect=f"{sar.numerator}/{sar.denominator}",
            ),
            graph.add("scale", f"w={width}:h={height}:out_color_matrix=bt709:out_range=tv:flags=bicubic"),
            graph.add("setsar", "1"),
            graph.add("fps", f"fps={self.rate.numerator}/{self.rate.denominator}:round=near"),
            graph.add("format", "yuv420p"),
            graph.add("buffersink"),
        ]
        for upstream, downstream in itertools.pairwise(chain):
            upstream.link_to(downstream)
        graph.configure()
        return graph

    def add(self, frame: av.VideoFrame) -> None:
        if frame.pts is None and self.first_pts is None:
            self.untimed = True  # the stream's first frame has no time: a raw elementary stream
        if self.untimed:
            frame.pts = self.clock.next_pts()
        elif frame.pts is None:
            return  # one frame without a time in a timed stream: nothing says where it goes
        # Start the rendition's clock at the first frame, whatever the source's start offset.
        self.first_pts = frame.pts if self.first_pts is None else self.first_pts
        frame.pts -= self.first_pts
        self.graph.push(frame)
        self._drain()

    def finish(self) -> None:
        self.graph.push(None)
        self._drain()
        for packet in self.stream.encode():
            self.out.mux(packet)

    def _drain(self) -> None:
        while True:
            try:
                frame = self.graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            frame.pts = self.written
            frame.time_base = self.frame_time_base
            frame.color_range = _LIMITED_RANGE
            frame.color_primaries = frame.color_trc = frame.colorspace = _BT709
            keyframe = is_keyframe_index(self.written, self.rate, self.keyframe_seconds)
            frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
            for packet in self.stream.encode(frame):
                self.out.mux(packet)
            self.written += 1


class _AudioEncoder:
    """Resamples any audio to 48 kHz stereo and encodes AAC in the encoder's fixed frame size."""

    def __init__(self, out: av.container.OutputContainer) -> None:
        self.out = out
        self.stream = out.add_stream("aac", rate=AUDIO_SAMPLE_RATE)
        self.stream.layout = "stereo"
        self.stream.bit_rate = AUDIO_BITRATE
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_SAMPLE_RATE)
        self.fifo = av.AudioFifo()
        self.samples = 0

    def add(self, frame: av.AudioFrame) -> None:
        frame.pts = None
        for resampled in self.resampler.resample(frame):
            self.fifo.write(resampled)
        self._encode_available(final=False)

    def finish(self) -> None:
        for resampled in self.resampler.resample(None):
            self.fifo.write(resampled)
        self._encode_available(final=True)
        for packet in self.stream.encode():
            self.out.mux(packet)

    def _encode_available(self, *, final: bool) -> None:
        frame_size = self.stream.codec_context.frame_size or 1024
        while self.fifo.samples >= frame_size or (final and self.fifo.samples):
            chunk = self.fifo.read(min(frame_size, self.fifo.samples))
            chunk.pts = self.samples
            chunk.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
            self.samples += chunk.samples
            for packet in self.stream.encode(chunk):
                self.out.mux(packet)


def write_poster(rendition: str | Path, destination: str | Path, *, at_seconds: float) -> None:
    """Save the first frame at or after ``at_seconds`` of the rendition as a JPEG."""
    with av.open(str(rendition)) as container:
        stream = container.streams.video[0]
        container.seek(int(at_seconds / stream.time_base), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is not None and frame.time >= at_seconds:
                break
        if chosen is None:
            raise ValueError("the rendition has no frame to use as a poster")
        chosen.to_image().save(str(destination), format="JPEG", quality=POSTER_QUALITY)
