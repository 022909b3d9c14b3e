"""(1a) The server-only path: what one analysed frame costs when the server runs the whole model.

Per sample of a real rendition: PyAV decodes the frame nearest the sample time and converts it
to RGB (``inference.ml.frames.decode_frames_at``), the Keras CNN chunk resizes it and computes
its features (``inference.ml.cnn.compute_features``, at the server's batch size), and the nsfw
dense head scores it (``inference.ml.nsfw_head``). Two conversions, measured side by side:

- ``cheapest``: PyAV/swscale's own rgb24, what a server that ran the whole model itself would use
  (it needs correct pixels, not the browser's); the offload ratio's numerator;
- ``browser_exact``: ``inference.ml.frames.frame_to_rgb``, the numpy emulation of Chromium's libyuv
  conversion, what the server pays for each sample it recomputes to verify a browser.

CPU time counts every thread of the process (TensorFlow and the decoder are multithreaded);
the medians of ``repeats`` passes over the same samples are reported per stage and path.

Run it in its own process (``bench.measure.run_isolated``) so that its peak RSS is its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.measure import median, timed

if TYPE_CHECKING:
    import av

    from inference.ml.nsfw_head import NsfwHead

HEAD_PASSES = 100
# The server-only paths (by their RGB conversion) and their names in the table and plot; "cheapest" is the
# offload ratio's numerator.
PATHS = {"cheapest": "cheapest (swscale rgb24)", "browser_exact": "browser-exact (libyuv emulation)"}


def _artefacts():
    from django.conf import settings

    from inference.ml.artefacts import ensure_artefacts

    return ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)


def _codes_path(rendition: Path, content_hash: str) -> Path:
    from django.conf import settings

    return rendition.with_name(f"{rendition.stem}.{content_hash[:16]}.{settings.HYDRA_SAMPLE_INTERVAL_MS}.codes.npy")


def _swscale_rgb(frame: av.VideoFrame) -> np.ndarray:
    """PyAV's own rgb24 (swscale): correct pixels at a fraction of the libyuv emulation's cost."""
    return frame.to_ndarray(format="rgb24")


def keras_ms_per_frame(model, frames: np.ndarray, batch_size: int, repeats: int) -> dict[str, float]:
    """Median wall and CPU ms per frame of the Keras CNN (resize included) at one batch size, after a warm-up."""
    from inference.ml.cnn import compute_features

    compute_features(model, frames[:batch_size], batch_size=batch_size)
    passes = [timed(lambda: compute_features(model, frames, batch_size=batch_size))[1] for _ in range(repeats)]
    return {
        "batch_size": batch_size,
        "wall_ms_per_frame": median(p.wall_s for p in passes) / len(frames) * 1000,
        "cpu_ms_per_frame": median(p.cpu_s for p in passes) / len(frames) * 1000,
    }


def _one_pass(
    path: Path, times: list[int], convert: Callable[[av.VideoFrame], np.ndarray], model, head: NsfwHead
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """CPU ms per frame of each stage (and their total) over every sample once, with the frames and features."""
    from inference.ml import cnn, frames

    decoded, decode = timed(lambda: frames.decode_frames_at(path, times, convert=convert))
    features, network = timed(lambda: cnn.compute_features(model, decoded))
    _, heads = timed(lambda: [head.predict(features) for _ in range(HEAD_PASSES)])
    cpu_s = {"decode_convert": decode.cpu_s, "cnn": network.cpu_s, "heads": heads.cpu_s / HEAD_PASSES}
    cpu_s["total"] = sum(cpu_s.values())
    return {stage: seconds / len(times) * 1000 for stage, seconds in cpu_s.items()}, decoded, features


def measure(
    seconds: int = 12,
    width: int = 1280,
    height: int = 720,
    repeats: int = 3,
    batch1_frames: int = 8,
    photo_frames: int = 16,
) -> dict:
    """Per-stage CPU ms per frame of both server-only paths on a rendition, and the quantisation error."""
    import django

    django.setup()
    from django.conf import settings

    from bench import clips, ml_quantisation, wire
    from inference.ml import cnn, frames
    from inference.ml.nsfw_head import load_nsfw_head
    from inference.ml.quantise import quantise
    from inference.sampling import sample_times_ms
    from videos.media import probe

    path = clips.rendition(seconds=seconds, width=width, height=height)
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(probed.duration_ms, probed.fps, settings.HYDRA_SAMPLE_INTERVAL_MS)
    artefacts = _artefacts()
    model = cnn.load_feature_extractor(artefacts.directory)
    head = load_nsfw_head(artefacts.directory / "nsfw_head.npz")
    conversions = {"cheapest": _swscale_rgb, "browser_exact": frames.frame_to_rgb}
    # Warm up: the decoder and both conversions, and the graph for this batch shape (a new shape compiles a new graph).
    frames.decode_frames_at(path, times, convert=_swscale_rgb)
    warm_features = cnn.compute_features(model, frames.decode_frames_at(path, times))
    codes_path = _codes_path(path, artefacts.content_hash)
    if not codes_path.exists():
        np.save(codes_path, quantise(warm_features))

    runs: dict[str, dict[str, list[float]]] = {name: {} for name in conversions}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(repeats):
        # Both paths in every repeat, so that the shared machine's load weighs on them alike.
        for name, convert in conversions.items():
            per_frame, decoded, features = _one_pass(path, times, convert, model, head)
            outputs[name] = decoded, features
            for stage, value in per_frame.items():
                runs[name].setdefault(stage, []).append(value)
    decoded, features = outputs["browser_exact"]  # what browsers compute and send: wire and quantisation use it

    batch32_frames = np.resize(decoded, (32, *decoded.shape[1:]))  # the samples repeated to one full batch
    photos = np.stack(ml_quantisation.photo_crops(photo_frames, np.random.default_rng(0)))
    photo_features = cnn.compute_features(model, photos)
    return {
        "rendition": {
            "width": probed.width,
            "height": probed.height,
            "fps": probed.fps,
            "duration_ms": probed.duration_ms,
            "keyframe_seconds": settings.HYDRA_RENDITION_KEYFRAME_SECONDS,
        },
        "samples": len(times),
        "repeats": repeats,
        "cpu_ms_per_frame": {
            name: {stage: median(values) for stage, values in stages.items()} for name, stages in runs.items()
        },
        "cpu_ms_per_frame_runs": runs,
        "keras_batch1": keras_ms_per_frame(model, decoded[:batch1_frames], 1, repeats),
        "keras_batch32": keras_ms_per_frame(model, batch32_frames, 32, repeats),
        "wire": wire.measure({"rendition": decoded, "photo_crops": photos}, cnn.FEATURE_SIZE),
        "quantisation": {
            "rendition_frames": ml_quantisation.quantisation_error(features, head),
            "photo_crops": ml_quantisation.quantisation_error(photo_features, head),
        },
    }


def rendition_codes(seconds: int, width: int, height: int) -> dict:
    """The uint8 features of every sample of a bench rendition (what an honest browser sends), cached on disk."""
    import django

    django.setup()
    from django.conf import settings

    from bench import clips
    from inference.ml import cnn, frames
    from inference.ml.quantise import quantise
    from inference.sampling import sample_times_ms
    from videos.media import probe

    path = clips.rendition(seconds=seconds, width=width, height=height)
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(probed.duration_ms, probed.fps, settings.HYDRA_SAMPLE_INTERVAL_MS)
    artefacts = _artefacts()
    codes_path = _codes_path(path, artefacts.content_hash)
    if not codes_path.exists():
        model = cnn.load_feature_extractor(artefacts.directory)
        np.save(codes_path, quantise(cnn.compute_features(model, frames.decode_frames_at(path, times))))
    return {
        "rendition": str(path),
        "codes_path": str(codes_path),
        "times": times,
        "fps": probed.fps,
        "duration_ms": probed.duration_ms,
        "width": probed.width,
        "height": probed.height,
    }
