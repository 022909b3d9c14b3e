"""(1a) The server-only path: what one analysed frame costs when the server runs the whole model.

Per sample of a real rendition: PyAV decodes the frame nearest the sample time and converts
it to RGB exactly as headless Chromium does (``inference.ml.frames.decode_frames_at``), the
Keras CNN chunk resizes it and computes its features (``inference.ml.cnn.compute_features``,
at the server's batch size), and the nsfw dense head scores it (``inference.ml.nsfw_head``).
CPU time counts every thread of the process (TensorFlow and the decoder are multithreaded);
the medians of ``repeats`` passes over the same samples are reported per stage.

Run it in its own process (``bench.measure.run_isolated``) so that its peak RSS is its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.measure import median, timed

HEAD_PASSES = 100


def _artefacts():
    from django.conf import settings

    from inference.ml.artefacts import ensure_artefacts

    return ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)


def _codes_path(rendition: Path, content_hash: str) -> Path:
    from django.conf import settings

    return rendition.with_name(f"{rendition.stem}.{content_hash[:16]}.{settings.HYDRA_SAMPLE_INTERVAL_MS}.codes.npy")


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


def measure(
    seconds: int = 12,
    width: int = 1280,
    height: int = 720,
    repeats: int = 3,
    batch1_frames: int = 8,
    photo_frames: int = 16,
) -> dict:
    """Per-stage CPU ms per frame of the server-only path on a rendition, and the quantisation error."""
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
    # Warm up: the decoder, and the graph for this batch shape (a new shape compiles a new graph).
    warm_features = cnn.compute_features(model, frames.decode_frames_at(path, times))
    codes_path = _codes_path(path, artefacts.content_hash)
    if not codes_path.exists():
        np.save(codes_path, quantise(warm_features))

    stages: dict[str, list[float]] = {"decode_convert": [], "cnn": [], "heads": [], "total": []}
    decoded = features = None
    for _ in range(repeats):
        decoded, decode = timed(lambda: frames.decode_frames_at(path, times))
        features, network = timed(lambda decoded=decoded: cnn.compute_features(model, decoded))
        _, heads = timed(lambda features=features: [head.predict(features) for _ in range(HEAD_PASSES)])
        per_frame = {
            "decode_convert": decode.cpu_s,
            "cnn": network.cpu_s,
            "heads": heads.cpu_s / HEAD_PASSES,
        }
        for name, cpu_s in per_frame.items():
            stages[name].append(cpu_s / len(times) * 1000)
        stages["total"].append(sum(per_frame.values()) / len(times) * 1000)

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
        "cpu_ms_per_frame": {name: median(values) for name, values in stages.items()},
        "cpu_ms_per_frame_runs": stages,
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
