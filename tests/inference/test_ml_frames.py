"""Frame selection by presentation time and the browser's YUV -> RGB conversion."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from inference.ml import frames as frames_module
from inference.ml.frames import (
    BT601,
    BT709,
    BT2020,
    F709,
    F2020,
    JPEG,
    FrameDecodeError,
    YuvConstants,
    decode_frames_at,
    frame_time_ms,
    frame_to_rgb,
    i420_to_rgb,
    yuv_constants,
)
from inference.sampling import sample_times_ms
from videos.synthetic import iter_frames


def encode(
    path: Path,
    frames_rgb,
    fps: int = 24,
    keyint: int | None = None,
    colorspace: int | None = None,
    matrix_tag_only: bool = False,
) -> Path:
    """Encode RGB frames with x264 at near-lossless quality; optionally tag the colour space and fix the GOP.

    A tagged clip is tagged like Hydra's renditions: primaries, transfer and matrix, limited range
    (``matrix_tag_only``: the matrix alone, which Chromium ignores).
    """
    frames_rgb = list(frames_rgb)
    height, width = frames_rgb[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        params = "qp=4"
        if keyint:
            params += f":keyint={keyint}:min-keyint={keyint}:scenecut=0"
        if colorspace is not None:
            name = {Colorspace.ITU709: "bt709", Colorspace.ITU601: "smpte170m"}[colorspace]
            tags = f"colormatrix={name}" if matrix_tag_only else f"colorprim={name}:transfer={name}:colormatrix={name}"
            params += f":{tags}:range=tv"
        stream.options = {"preset": "ultrafast", "x264-params": params}
        if colorspace is not None:
            context = stream.codec_context
            context.colorspace = colorspace
            if not matrix_tag_only:
                context.color_primaries = context.color_trc = colorspace
            context.color_range = ColorRange.MPEG
        for index, rgb in enumerate(frames_rgb):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if colorspace is not None:
                frame = frame.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range=ColorRange.MPEG)
                frame.colorspace = colorspace
                if not matrix_tag_only:
                    frame.color_primaries = frame.color_trc = colorspace
                frame.color_range = ColorRange.MPEG
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def all_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(frame_time_ms(frame), frame_to_rgb(frame)) for frame in container.decode(video=0)]


def smooth_image(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    r = 128 + 100 * np.sin(xx / width * 4.0)
    g = 128 + 100 * np.cos(yy / height * 3.0)
    b = 60 + 150 * (xx + yy) / (width + height)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


# --- the libyuv constants ------------------------------------------------------------------------


def test_constants_are_libyuvs_fixed_point_rounding_of_the_matrices():
    # 6-bit fixed point; UB is capped at 128 (2.0) in Chromium's libyuv build.
    assert BT601.yg == BT709.yg == round(1.164 * 64 * 256 * 256 / 257)
    assert (BT601.ug, BT601.vg, BT601.vr) == (round(0.391 * 64), round(0.813 * 64), round(1.596 * 64))
    assert (BT709.ug, BT709.vg, BT709.vr) == (round(0.213 * 64), round(0.533 * 64), round(1.793 * 64))
    assert BT601.ub == BT709.ub == BT2020.ub == 128
    assert (JPEG.ug, JPEG.vg, JPEG.vr, JPEG.ub) == (round(0.34414 * 64), round(0.71414 * 64), round(1.402 * 64), 113)


@pytest.mark.parametrize("constants", [BT601, BT709])
def test_limited_range_black_white_and_grey(constants):
    y = np.array([[16, 235, 126, 126]], dtype=np.uint8)
    rgb = i420_to_rgb(
        np.repeat(y, 2, axis=0), np.full((1, 2), 128, np.uint8), np.full((1, 2), 128, np.uint8), constants
    )
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [128, 128, 128]


@pytest.mark.parametrize("constants,kr,kb", [(BT601, 0.299, 0.114), (BT709, 0.2126, 0.0722)])
def test_fixed_point_is_within_a_few_levels_of_the_float_matrix(constants, kr, kb):
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, size=(64, 64)).astype(np.uint8)
    u = rng.integers(16, 241, size=(32, 32)).astype(np.uint8)
    v = rng.integers(16, 241, size=(32, 32)).astype(np.uint8)
    rgb = i420_to_rgb(y, u, v, constants).astype(np.float64)
    uf = np.repeat(np.repeat(u, 2, 0), 2, 1).astype(np.float64) - 128
    vf = np.repeat(np.repeat(v, 2, 0), 2, 1).astype(np.float64) - 128
    yc = 255 / 219 * (y - 16.0)
    kg = 1 - kr - kb
    r = yc + 255 / 224 * 2 * (1 - kr) * vf
    g = yc - 255 / 224 * (2 * (1 - kb) * kb / kg * uf + 2 * (1 - kr) * kr / kg * vf)
    expected = np.clip(np.stack([r, g], axis=-1), 0, 255)
    # R and G follow the matrix to within rounding of 6-bit coefficients; B is capped (UB = 2.0).
    assert np.abs(rgb[..., :2] - expected).max() <= 3


def test_chroma_is_nearest_neighbour_per_2x2_block():
    y = np.full((4, 4), 126, dtype=np.uint8)
    u = np.array([[90, 200], [128, 60]], dtype=np.uint8)
    v = np.array([[128, 128], [240, 30]], dtype=np.uint8)
    rgb = i420_to_rgb(y, u, v, BT601)
    for by in range(2):
        for bx in range(2):
            block = rgb[by * 2 : by * 2 + 2, bx * 2 : bx * 2 + 2].reshape(-1, 3)
            assert (block == block[0]).all()
    assert not (rgb[0, 0] == rgb[0, 2]).all()


ALL_CONSTANTS = [BT601, BT709, BT2020, JPEG, F709, F2020]


def reference_i420_to_rgb(y, u, v, constants):
    """libyuv's formula written out in int32, as the oracle for the fast conversion."""
    height, width = y.shape
    u_full = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:height, :width].astype(np.int32) - 128
    v_full = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:height, :width].astype(np.int32) - 128
    y1 = ((y.astype(np.uint32) * 0x0101 * constants.yg) >> 16).astype(np.int32) + constants.yb
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.clip((y1 + v_full * constants.vr) >> 6, 0, 255)
    rgb[..., 1] = np.clip((y1 - (u_full * constants.ug + v_full * constants.vg)) >> 6, 0, 255)
    rgb[..., 2] = np.clip((y1 + u_full * constants.ub) >> 6, 0, 255)
    return rgb


@pytest.mark.parametrize("constants", ALL_CONSTANTS, ids=lambda constants: constants.name)
def test_every_yuv_triple_matches_the_formula(constants):
    """All 256**3 (y, u, v): 64 frames whose 2x2 blocks hold every (u, v) pair with four luma levels each."""
    u, v = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    block_levels = np.tile(np.array([[0, 1], [2, 3]], dtype=np.uint8), (256, 256))
    for first in range(0, 256, 4):
        y = block_levels + np.uint8(first)
        assert np.array_equal(i420_to_rgb(y, u, v, constants), reference_i420_to_rgb(y, u, v, constants))


@pytest.mark.parametrize("constants", ALL_CONSTANTS, ids=lambda constants: constants.name)
@pytest.mark.parametrize("height,width", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (6, 4), (37, 50), (64, 81)])
def test_random_planes_match_the_formula(constants, height, width):
    """Planes are views into padded rows, as decoded planes are; the chroma has a spare row and column."""
    rng = np.random.default_rng(height * 1000 + width)
    half_h, half_w = (height + 1) // 2, (width + 1) // 2
    y = rng.integers(0, 256, size=(height + 2, width + 7), dtype=np.uint8)[:height, :width]
    u, v = rng.integers(0, 256, size=(2, half_h + 3, half_w + 5), dtype=np.uint8)[:, : half_h + 1, : half_w + 1]
    for plane in (y, u[:half_h, :half_w], v[:half_h, :half_w]):  # the extremes, where the plane holds both
        plane[0, 0], plane[-1, -1] = 0, 255
    assert np.array_equal(i420_to_rgb(y, u, v, constants), reference_i420_to_rgb(y, u, v, constants))


def test_constants_whose_sums_overflow_uint16_are_refused():
    too_wide = YuvConstants("too-wide", yg=18997, yb=-1160, ub=255, ug=0, vg=0, vr=255)
    with pytest.raises(ValueError, match="uint16"):
        i420_to_rgb(np.zeros((2, 2), np.uint8), np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), too_wide)


def test_odd_sizes_are_converted():
    y = np.full((3, 5), 100, dtype=np.uint8)
    rgb = i420_to_rgb(y, np.full((2, 3), 128, np.uint8), np.full((2, 3), 128, np.uint8), BT709)
    assert rgb.shape == (3, 5, 3)


def test_matrix_choice_follows_complete_tags_then_height():
    bt709, smpte170m, unspecified = 1, 6, 2
    assert yuv_constants(bt709, 1, 240, primaries=bt709, transfer=bt709) is BT709
    assert yuv_constants(smpte170m, 1, 1080, primaries=smpte170m, transfer=smpte170m) is BT601
    assert yuv_constants(Colorspace.ITU601, 1, 1080, primaries=bt709, transfer=bt709) is BT601
    assert yuv_constants(Colorspace.BT2020, 1, 2160, primaries=9, transfer=14) is BT2020
    assert yuv_constants(bt709, ColorRange.JPEG, 240, primaries=bt709, transfer=bt709) is F709
    # Incomplete tags are ignored, as Chromium does: the height decides.
    assert yuv_constants(bt709, 1, 240, primaries=unspecified, transfer=unspecified) is BT601
    assert yuv_constants(bt709, 1, 240, primaries=bt709, transfer=unspecified) is BT601
    assert yuv_constants(unspecified, 0, 719, primaries=unspecified, transfer=unspecified) is BT601
    assert yuv_constants(unspecified, 0, 720, primaries=unspecified, transfer=unspecified) is BT709
    assert yuv_constants(unspecified, ColorRange.JPEG, 240, primaries=unspecified, transfer=unspecified) is JPEG


# --- decoding real files ---------------------------------------------------------------------


@pytest.mark.parametrize("height,width,colorspace", [(240, 320, None), (144, 176, Colorspace.ITU709)])
def test_decoded_frame_matches_the_encoded_image(tmp_path, height, width, colorspace):
    image = smooth_image(height, width)
    path = encode(tmp_path / "still.mp4", [image] * 3, colorspace=colorspace)
    decoded = decode_frames_at(path, [0])[0]
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert psnr(decoded, image) > 38
    # The other matrix is visibly wrong on the same file: the tag (or its absence) decides.
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert int(frame.colorspace) == (colorspace or 2)
        half = (frame.height // 2, frame.width // 2)
        planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes]
        wrong = i420_to_rgb(
            planes[0][:height, :width],
            planes[1][: half[0], : half[1]],
            planes[2][: half[0], : half[1]],
            BT601 if colorspace else BT709,
        )
    assert psnr(wrong, image) < psnr(decoded, image) - 6


@pytest.mark.parametrize("keyint,seek_ahead_ms", [(None, 500), (24, 500), (24, None), (24, 0), (None, 0)])
def test_each_sample_gets_the_frame_with_the_nearest_pts(tmp_path, keyint, seek_ahead_ms):
    fps = 24
    path = encode(tmp_path / "clip.mp4", iter_frames("erratic", 5, fps, 96, 64, seed=3), fps=fps, keyint=keyint)
    reference = all_frames(path)
    samples = sample_times_ms(5000, fps, 1000)
    targets = [*samples, 1520, 1521, 30, 9999, 0, 2000]  # between frames, past the end, out of order, repeated
    decoded = decode_frames_at(path, targets, seek_ahead_ms=seek_ahead_ms)
    assert decoded.shape == (len(targets), 64, 96, 3)
    for target, frame in zip(targets, decoded, strict=True):
        nearest_time, nearest = min(reference, key=lambda item: (abs(item[0] - target), item[0]))
        assert np.array_equal(frame, nearest), f"{target} ms should give the frame at {nearest_time} ms"


def test_no_samples_gives_an_empty_batch(tmp_path):
    path = encode(tmp_path / "clip.mp4", iter_frames("calm", 1, 24, 64, 48))
    assert decode_frames_at(path, []).shape == (0, 48, 64, 3)


def test_bad_input_is_a_clear_error(tmp_path):
    not_video = tmp_path / "text.mp4"
    not_video.write_text("hello")
    with pytest.raises(FrameDecodeError):
        decode_frames_at(not_video, [0])
    with pytest.raises(ValueError, match="negative"):
        decode_frames_at(not_video, [-5])


@pytest.mark.parametrize("keyint,seeks_stay_on", [(24, True), (None, False)])
def test_seeks_to_keyframes_only_while_that_helps(tmp_path, monkeypatch, keyint, seeks_stay_on):
    """With a keyframe at every sample a sample costs one intra frame; with sparse keyframes it decodes in order."""
    path = encode(tmp_path / "clip.mp4", iter_frames("calm", 5, 24, 64, 48), keyint=keyint)
    seeks = []
    original = frames_module._NearestFrameReader._seek

    def spy(reader, target_ms):
        original(reader, target_ms)
        seeks.append((target_ms, reader._can_seek))

    monkeypatch.setattr(frames_module._NearestFrameReader, "_seek", spy)
    decode_frames_at(path, sample_times_ms(5000, 24, 1000))
    if seeks_stay_on:
        assert seeks == [(1000, True), (2000, True), (3000, True), (4000, True)]
    else:
        assert seeks == [(1000, False)]
