"""How other browsers paint a decoded frame: the known, honest ways to differ from the server.

The server paints frames exactly as Chromium's software path does (libyuv fixed point, nearest
chroma; ``inference.ml.frames.frame_to_rgb``). Browsers that decode on a GPU differ: the texture
sampler filters chroma bilinearly, drivers use textbook float matrices, some paths go through
swscale. Before the server calls a session a liar, it checks the session's features against the
features of these paintings of the same frame too (``alternative_features``): an honest GPU
browser matches one of them closely, a lie matches none. Pure: no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

from inference.ml import frames as server_frames


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    h, w = frame.height, frame.width
    return (
        server_frames.yuv_plane(frame, 0, h, w),
        server_frames.yuv_plane(frame, 1, (h + 1) // 2, (w + 1) // 2),
        server_frames.yuv_plane(frame, 2, (h + 1) // 2, (w + 1) // 2),
    )


def _matrix_name(frame: av.VideoFrame) -> str:
    """The matrix Chromium picks for this frame (inference.ml.frames decides), by name."""
    constants = server_frames.yuv_constants(
        int(frame.colorspace),
        int(frame.color_range),
        frame.height,
        primaries=int(frame.color_primaries),
        transfer=int(frame.color_trc),
    )
    return "bt709" if constants.vr == server_frames.BT709.vr else "bt601"


def _nearest_chroma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)[:height, :width].astype(np.float32)


def _bilinear_chroma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Chroma upsampled by bilinear filtering, as a GPU texture sampler does (centre-sited)."""
    p = plane.astype(np.float32)
    ys = np.clip((np.arange(height) + 0.5) / 2 - 0.5, 0, p.shape[0] - 1)
    xs = np.clip((np.arange(width) + 0.5) / 2 - 0.5, 0, p.shape[1] - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, p.shape[0] - 1), np.minimum(x0 + 1, p.shape[1] - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = p[y0][:, x0] * (1 - fx) + p[y0][:, x1] * fx
    bottom = p[y1][:, x0] * (1 - fx) + p[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _float_matrix(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str) -> np.ndarray:
    """Textbook floating-point limited-range YUV -> RGB with the stream's matrix."""
    vr, ug, vg, ub = (1.5748, 0.1873, 0.4681, 1.8556) if matrix == "bt709" else (1.596, 0.392, 0.813, 2.017)
    yc = 1.164 * (y.astype(np.float32) - 16)
    uc, vc = u - 128.0, v - 128.0
    rgb = np.stack([yc + vr * vc, yc - ug * uc - vg * vc, yc + ub * uc], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def gpu_bilinear_chroma(frame: av.VideoFrame) -> np.ndarray:
    y, u, v = _planes(frame)
    h, w = y.shape
    return _float_matrix(y, _bilinear_chroma(u, h, w), _bilinear_chroma(v, h, w), _matrix_name(frame))


def float_matrix(frame: av.VideoFrame) -> np.ndarray:
    y, u, v = _planes(frame)
    h, w = y.shape
    return _float_matrix(y, _nearest_chroma(u, h, w), _nearest_chroma(v, h, w), _matrix_name(frame))


def swscale(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


PAINTINGS: dict[str, Callable[[av.VideoFrame], np.ndarray]] = {
    "chromium-software": server_frames.frame_to_rgb,
    "gpu-bilinear-chroma": gpu_bilinear_chroma,
    "float-matrix": float_matrix,
    "swscale": swscale,
}
ALTERNATIVES = tuple(name for name in PAINTINGS if name != "chromium-software")


def painted_frames(path: str | Path, sample_ms: Sequence[int], painting: str) -> np.ndarray:
    """uint8[N, H, W, 3]: the sampled frames as a browser of this ``painting`` shows them."""
    return server_frames.decode_frames_at(path, sample_ms, convert=PAINTINGS[painting])


def alternative_features(
    path: str | Path, sample_ms: Sequence[int], features: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """float32[len(ALTERNATIVES), N, D]: the CNN features of every alternative painting of the sampled frames."""
    return np.stack([features(painted_frames(path, sample_ms, name)) for name in ALTERNATIVES])
