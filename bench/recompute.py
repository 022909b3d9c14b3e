"""The server's recomputations (spot checks, disputes, flag confirmation, the coverage deadline): CPU per frame.

Two paths on the same rendition (the site's settings: 720p, an IDR frame every second) and samples:

- ``keras_full_frame`` (before): what ``server_features.features_at`` did until the TFLite runtime:
  decode, libyuv conversion of the whole frame, TensorFlow's resize, Keras ``predict_on_batch``
  with its thread pools, 32 frames at a time;
- ``tflite_sparse`` (after): ``inference.ml.server_cnn.features_at``: decode each frame once in time
  order (slice threads, not frame threads), convert only the pixels the resize reads, resize in numpy
  (bit-identical), the .tflite on one XNNPACK thread, the interpreter reused.

Each is measured for a lone spot check (one call for one frame: open, seek, decode, CNN) and for a
settlement pass that recomputes 8 and 60 frames of one video in one task. CPU is the whole
process's (``time.process_time``: TensorFlow's and the decoder's threads included), after a
warm-up that loads each model; loading is reported apart. Stages of the new path are timed on
their own, and the two paths' features are compared (cosine, identical uint8 codes).
Run in its own process (``bench.measure.run_isolated``, or ``python -m bench.recompute [seconds]``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.measure import median, timed

PASS_SIZES = (8, 60)
KERAS_BATCH = 32  # the batch the old features_at decoded and computed at


def keras_full_frame(artefact_dir: Path) -> Callable[[Path, Sequence[int]], np.ndarray]:
    """Today's path before this change, kept here as the baseline."""
    from inference.ml import cnn, frames

    model = cnn.cached_feature_extractor(str(artefact_dir))

    def features(path: Path, times: Sequence[int]) -> np.ndarray:
        return np.concatenate(
            [
                cnn.compute_features(model, frames.decode_frames_at(path, times[start : start + KERAS_BATCH]))
                for start in range(0, len(times), KERAS_BATCH)
            ]
        )

    return features


def tflite_sparse(artefact_dir: Path) -> Callable[[Path, Sequence[int]], np.ndarray]:
    from inference.ml import server_cnn

    server_cnn.feature_runtime(str(artefact_dir))
    return lambda path, times: server_cnn.features_at(path, times, artefact_dir)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _stages(path: Path, times: Sequence[int], artefact_dir: Path, repeats: int) -> dict[str, float]:
    """CPU ms per frame of each stage of the new path, and of the whole-frame conversion it replaced."""
    from inference.ml import cnn, frames, server_cnn

    decoded: list = []

    def keep(frame):
        decoded.append(frame)
        return np.zeros(1)

    def decode(thread_type: str) -> float:
        decoded.clear()
        return timed(lambda: frames.decode_frames_at(path, times, convert=keep, thread_type=thread_type))[1].cpu_s

    per = 1000 / len(times)
    frame_threads = median(decode("AUTO") for _ in range(repeats)) * per
    slice_threads = median(decode(server_cnn.DECODE_THREAD_TYPE) for _ in range(repeats)) * per

    def each(function) -> float:
        return median(timed(lambda: [function(frame) for frame in decoded])[1].cpu_s for _ in range(repeats)) * per

    inputs = np.stack([server_cnn.browser_input(frame) for frame in decoded])
    runtime = server_cnn.feature_runtime(str(artefact_dir))
    return {
        "decode_in_order": slice_threads,
        "decode_in_order_with_frame_threads": frame_threads,
        "convert_needed_pixels_and_resize": each(server_cnn.browser_input),
        "convert_whole_frame": each(frames.frame_to_rgb),
        "convert_whole_frame_and_tf_resize": each(lambda frame: cnn.preprocess(frames.frame_to_rgb(frame)[None])),
        "tflite_one_thread": median(timed(lambda: runtime(inputs))[1].cpu_s for _ in range(repeats)) * per,
    }


def _path_costs(
    run: Callable[[Path, Sequence[int]], np.ndarray],
    path: Path,
    lone: Sequence[int],
    passes: list[list[int]],
    repeats: int,
) -> dict:
    run(path, lone[:2])  # warm-up: the first decode, the first call
    per_pass = {}
    for chosen in passes:
        cpu = [timed(lambda chosen=chosen: run(path, chosen))[1].cpu_s for _ in range(repeats)]
        per_pass[str(len(chosen))] = median(cpu) * 1000 / len(chosen)
    return {
        "lone_spot_check_cpu_ms": median(timed(lambda t=t: run(path, [t]))[1].cpu_s * 1000 for t in lone),
        "cpu_ms_per_frame_by_pass_size": per_pass,
    }


def measure(seconds: int = 60, width: int = 1280, height: int = 720, repeats: int = 3, lone_checks: int = 8) -> dict:
    """CPU ms per recomputed frame, before and after, for a lone spot check and per settlement pass."""
    import django

    django.setup()
    from django.conf import settings

    from bench import clips
    from bench.server_only import _artefacts
    from inference.ml.quantise import quantise
    from inference.sampling import sample_times_ms
    from videos.media import probe

    path = clips.rendition(seconds=seconds, width=width, height=height)
    info = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(info.duration_ms, info.fps, settings.HYDRA_SAMPLE_INTERVAL_MS)
    artefact_dir = _artefacts().directory
    rng = random.Random(15)
    lone = rng.sample(times, min(lone_checks, len(times)))
    passes = [sorted(rng.sample(times, min(size, len(times)))) for size in PASS_SIZES]
    result: dict = {"clip": {"path": path.name, "width": width, "height": height, "samples": len(times)}, "paths": {}}
    features_by_path = {}
    for name, make in (("keras_full_frame", keras_full_frame), ("tflite_sparse", tflite_sparse)):
        run, load = timed(lambda make=make: make(artefact_dir))
        result["paths"][name] = {"load_cpu_s": load.cpu_s} | _path_costs(run, path, lone, passes, repeats)
        features_by_path[name] = run(path, times)
    before, after = features_by_path["keras_full_frame"], features_by_path["tflite_sparse"]
    result["agreement"] = {
        "frames": len(times),
        "min_cosine": float(_cosine(before, after).min()),
        "identical_uint8_codes": float((quantise(before) == quantise(after)).all(axis=1).mean()),
        "max_code_difference": int(np.abs(quantise(before).astype(int) - quantise(after).astype(int)).max()),
    }
    result["stages_cpu_ms_per_frame"] = _stages(path, times, artefact_dir, repeats)
    keras, tflite = result["paths"]["keras_full_frame"], result["paths"]["tflite_sparse"]
    result["lone_spot_check_speed_up"] = keras["lone_spot_check_cpu_ms"] / tflite["lone_spot_check_cpu_ms"]
    return result


def print_result(result: dict) -> None:
    for name, figures in result["paths"].items():
        passes = ", ".join(f"{size}: {ms:.1f}" for size, ms in figures["cpu_ms_per_frame_by_pass_size"].items())
        print(
            f"{name:<18} lone spot check {figures['lone_spot_check_cpu_ms']:.1f} CPU ms; "
            f"per frame in a pass of {passes}; load {figures['load_cpu_s']:.1f} CPU s"
        )
    print("stages (CPU ms/frame):", {k: round(v, 2) for k, v in result["stages_cpu_ms_per_frame"].items()})
    print("agreement:", result["agreement"])


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hydra_site.settings")
    outcome = measure(seconds=int(sys.argv[1]) if len(sys.argv) > 1 else 60)
    print_result(outcome)
    print(json.dumps(outcome))
