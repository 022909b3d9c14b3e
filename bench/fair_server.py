"""(1a, fair) The cheapest correct server-only path a competent engineer would build for this CNN.

Three ways for a server that runs the whole model itself to analyse a sample, on the same
rendition and samples as ``bench.server_only`` (which measures today's Keras path):

- ``tflite_keyframe``: seek to the sample's keyframe, decode it and let swscale scale it
  straight to 224x224 rgb24 (``VideoFrame.to_ndarray(width=224, height=224)``), then the CNN in
  TFLite/LiteRT (``tf.lite.Interpreter``, XNNPACK, shipped inside ``tensorflow``) at batch 1;
- ``tflite_transcoder``: the transcoder already decodes every frame of an upload; it hands the
  sampled frames over, so only the scale to 224x224 and the CNN are paid (decode is not counted);
- each at one interpreter thread and at every thread count up to the cores: the cheapest in
  CPU ms is "best" (more threads buy wall time with CPU).

Why TFLite and not ONNX Runtime: TFLite ships inside the pinned ``tensorflow-cpu`` (no new
dependency, no model conversion tool outside the kept libraries) and its XNNPACK kernels are
the ones built for this kind of mobile CNN. Correctness is checked, not assumed: the cosine of
the TFLite features against Keras on the same input, and of the whole fair path (scaled
decode + TFLite) against today's Keras path (full-frame rgb24 + bilinear resize).

``measure_model_size`` runs the same fair path for a much heavier CNN (InceptionV3, the other
model nsfwjs@4.4.0 ships, 299x299 input) so that the offload ratio can be read against model cost.
Run in its own process (``bench.measure.run_isolated``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.measure import median, timed
from inference.ml.export import tflite_flatbuffer

if TYPE_CHECKING:
    import av

INPUT_SIZE = 224
INCEPTION_INPUT_SIZE = 299
# A fair path must compute the same features as today's Keras path; below this it is a different analysis.
CORRECT_MIN_COSINE = 0.999


class TfliteRunner:
    """One interpreter at a thread count; ``features`` runs uint8 frames of the input size one at a time."""

    def __init__(self, flatbuffer: bytes, threads: int) -> None:
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def features(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for frame in frames:
            self.interpreter.set_tensor(self.input_index, (frame[None].astype(np.float32) / 255.0))
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        return np.stack(out)


def scaled_rgb(size: int) -> Callable[[av.VideoFrame], np.ndarray]:
    """swscale converts and scales in one pass, straight to the CNN's input size.

    Nearest-neighbour (POINT) is the swscale filter closest to the reference's bilinear
    align-corners resize, which samples the full frame at a few points and filters nothing;
    swscale's own bilinear and area filters average over the whole footprint and disagree more.
    """

    def convert(frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="POINT")

    return convert


def align_corners_rgb(size: int) -> Callable[[av.VideoFrame], np.ndarray]:
    """swscale's full-frame rgb24, then the reference resize (bilinear, align corners) on just the pixels it reads.

    The same numbers as ``inference.ml.cnn.preprocess`` (times 255), without TensorFlow's resize of the whole frame.
    """

    def weights(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.arange(size) * ((length - 1) / (size - 1))
        low = np.floor(position).astype(np.intp)
        return low, np.minimum(low + 1, length - 1), (position - low).astype(np.float32)

    def convert(frame: av.VideoFrame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        y0, y1, wy = weights(rgb.shape[0])
        x0, x1, wx = weights(rgb.shape[1])
        top, bottom = rgb[y0].astype(np.float32), rgb[y1].astype(np.float32)
        wx3, wy3 = wx[None, :, None], wy[:, None, None]
        upper = top[:, x0] * (1 - wx3) + top[:, x1] * wx3
        lower = bottom[:, x0] * (1 - wx3) + bottom[:, x1] * wx3
        return upper * (1 - wy3) + lower * wy3

    return convert


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def transcoder_handover_ms(
    path: Path, times: list[int], convert: Callable[[av.VideoFrame], np.ndarray]
) -> tuple[float, np.ndarray]:
    """Thread CPU ms per sample of scaling the sampled frames of an in-order decode (the decode itself is the
    transcoder's and not counted). ``time.thread_time`` keeps the decoder's own threads out of the figure."""
    from inference.ml import frames

    spent = [0.0]

    def handover(frame: av.VideoFrame) -> np.ndarray:
        started = time.thread_time()
        out = convert(frame)
        spent[0] += time.thread_time() - started
        return out

    decoded = frames.decode_frames_at(path, times, seek_ahead_ms=None, convert=handover)
    return spent[0] / len(times) * 1000, decoded


def _runner_costs(flatbuffer: bytes, inputs: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    """CPU and wall ms per frame at each thread count, median of ``repeats`` passes after a warm-up."""
    costs = {}
    for threads in range(1, (os.cpu_count() or 1) + 1):
        runner = TfliteRunner(flatbuffer, threads)
        runner.features(inputs[:2])
        passes = [timed(lambda runner=runner: runner.features(inputs))[1] for _ in range(repeats)]
        costs[str(threads)] = {
            "cpu_ms_per_frame": median(p.cpu_s for p in passes) / len(inputs) * 1000,
            "wall_ms_per_frame": median(p.wall_s for p in passes) / len(inputs) * 1000,
        }
    return costs


def _cheapest(costs: dict[str, dict[str, float]]) -> str:
    return min(costs, key=lambda threads: costs[threads]["cpu_ms_per_frame"])


def measure(seconds: int = 12, width: int = 1280, height: int = 720, repeats: int = 3) -> dict:
    """CPU ms per frame of each fair server-only path, per stage, and their agreement with Keras."""
    import django

    django.setup()
    from django.conf import settings

    from bench import clips
    from bench.server_only import _artefacts
    from inference.ml import cnn, frames
    from inference.ml.nsfw_head import load_nsfw_head
    from inference.sampling import sample_times_ms
    from videos.media import probe

    path = clips.rendition(seconds=seconds, width=width, height=height)
    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(probed.duration_ms, probed.fps, settings.HYDRA_SAMPLE_INTERVAL_MS)
    artefacts = _artefacts()
    model = cnn.load_feature_extractor(artefacts.directory)
    head = load_nsfw_head(artefacts.directory / "nsfw_head.npz")
    flatbuffer, conversion = timed(lambda: tflite_flatbuffer(model))
    keras_today = cnn.compute_features(model, frames.decode_frames_at(path, times, convert=_rgb24))
    conversions = {"scaled": scaled_rgb(INPUT_SIZE), "exact": align_corners_rgb(INPUT_SIZE)}

    paths: dict[str, dict] = {}
    costs: dict[str, dict[str, float]] = {}
    agreement: dict[str, dict[str, float]] = {}
    for conversion_name, convert in conversions.items():
        frames.decode_frames_at(path, times, convert=convert)  # warm the decoder
        passes = [
            timed(lambda convert=convert: frames.decode_frames_at(path, times, convert=convert)) for _ in range(repeats)
        ]
        inputs = passes[-1][0]
        decode_ms = median(p.cpu_s for _, p in passes) / len(times) * 1000
        handover_ms = median(transcoder_handover_ms(path, times, convert)[0] for _ in range(repeats))
        if not costs:  # the CNN's cost does not depend on the pixels: measured once, on the first inputs
            costs = _runner_costs(flatbuffer, inputs, repeats)
        fair_features = TfliteRunner(flatbuffer, 1).features(inputs)
        _, heads = timed(lambda features=fair_features: [head.predict(features) for _ in range(100)])
        heads_ms = heads.cpu_s / 100 / len(times) * 1000
        path_cosine = cosine(fair_features, keras_today)
        agreement[conversion_name] = {
            "tflite_vs_keras_same_input_min_cosine": float(
                cosine(fair_features, np.asarray(model.predict_on_batch(inputs.astype(np.float32) / 255.0))).min()
            ),
            "vs_keras_path_min_cosine": float(path_cosine.min()),
            "vs_keras_path_median_cosine": float(np.median(path_cosine)),
            "nsfw_class_agreement": float(
                np.mean(head.predict(fair_features).argmax(1) == head.predict(keras_today).argmax(1))
            ),
        }
        correct = agreement[conversion_name]["vs_keras_path_min_cosine"] >= CORRECT_MIN_COSINE
        for threads, label in (("1", "one_thread"), (_cheapest(costs), "best_threads")):
            cnn_ms = costs[threads]["cpu_ms_per_frame"]
            common = {"cnn": cnn_ms, "heads": heads_ms, "threads": int(threads), "correct": correct}
            paths[f"tflite_keyframe_{conversion_name}_{label}"] = common | {
                "decode_convert": decode_ms,
                "total": decode_ms + cnn_ms + heads_ms,
            }
            paths[f"tflite_transcoder_{conversion_name}_{label}"] = common | {
                "convert": handover_ms,
                "total": handover_ms + cnn_ms + heads_ms,
            }
    cheapest = min((name for name in paths if paths[name]["correct"]), key=lambda name: paths[name]["total"])
    return {
        "samples": len(times),
        "repeats": repeats,
        "tflite_conversion_cpu_s": conversion.cpu_s,
        "tflite_model_bytes": len(flatbuffer),
        "tflite_by_threads": costs,
        "best_threads": int(_cheapest(costs)),
        "correct_min_cosine": CORRECT_MIN_COSINE,
        "paths": paths,
        "cheapest": cheapest,
        "cheapest_cpu_ms_per_frame": paths[cheapest]["total"],
        "agreement": agreement,
    }


def _rgb24(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def measure_model_size(frames_count: int = 8, repeats: int = 3) -> dict:
    """The fair CNN cost of MobileNetV2 (this site's chunk) and InceptionV3 (nsfwjs@4.4.0's heavy model).

    Untrained weights: the cost of a dense CNN does not depend on its weights. Inputs are random
    frames already at the model's input size, so only the CNN is compared; decode is the same for both.
    """
    import keras

    from inference.ml import cnn

    rng = np.random.default_rng(0)
    models = {
        "mobilenet_v2": (cnn.build_feature_extractor(), INPUT_SIZE),
        "inception_v3": (
            keras.applications.InceptionV3(
                weights=None, include_top=False, pooling="avg", input_shape=(INCEPTION_INPUT_SIZE,) * 2 + (3,)
            ),
            INCEPTION_INPUT_SIZE,
        ),
    }
    out = {}
    for name, (model, size) in models.items():
        inputs = rng.integers(0, 256, (frames_count, size, size, 3), dtype=np.uint8)
        flatbuffer = tflite_flatbuffer(model)
        costs = _runner_costs(flatbuffer, inputs, repeats)
        out[name] = {
            "input_size": size,
            "parameters": int(model.count_params()),
            "feature_size": int(model.output_shape[-1]),
            "tflite_model_bytes": len(flatbuffer),
            "tflite_by_threads": costs,
            "cheapest_cnn_cpu_ms_per_frame": costs[_cheapest(costs)]["cpu_ms_per_frame"],
        }
    return out
