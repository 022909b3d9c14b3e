"""The server's CNN runtime: the Keras model's .tflite export on TFLite/XNNPACK, one thread, one frame at a time.

Every server recomputation (spot checks, disputes, flag confirmation, the coverage deadline,
training clips) runs here. Keras stays the source of truth: ``manage.py build_models`` exports
the .tflite from the Keras model next to its weights and records its sha256 in the manifest;
this module checks that hash when it loads the file. Measured here (docs/benchmarks.md): about
6-8 CPU ms per frame against Keras's 20-30 at batch 1 (its thread pools spin), features at
cosine >= 0.99999 to Keras and the same uint8 codes (tests/inference/test_server_cnn.py).

Frames take the browser's exact path to the CNN input: libyuv's conversion of only the pixels
the align-corners resize reads (``frames.frame_to_rgb_at``), then that resize in numpy
(``cnn.input_from_pixels``); both are bit-identical to converting and resizing the whole frame.
A directory built before the .tflite existed falls back to Keras, with a warning.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

from inference.ml import cnn, frames
from inference.ml.artefacts import ArtefactError, read_artefacts

logger = logging.getLogger(__name__)

# One interpreter thread: more threads buy wall time with CPU (bench/fair_server.py), and a worker
# process is one of several on the machine.
TFLITE_THREADS = 1
# Samples are a second apart and each one seeks to its keyframe: FFmpeg's frame threads decoded frames past
# every target that the seek then discarded (720p, one IDR a second: 5.2 CPU ms per frame against 2.1 with
# slice threads, 9.0 against 7.0 for a lone frame, file opening included; bench/recompute.py).
DECODE_THREAD_TYPE = "SLICE"

FeatureRuntime = Callable[[np.ndarray], np.ndarray]


class TfliteFeatures:
    """float32[N, 224, 224, 3] inputs -> float32[N, 1280] features, one ``invoke`` per frame (batch fixed at 1).

    One interpreter per process, and an interpreter is not thread-safe: concurrent calls (settlement
    passes on a thread pool, where tasks run in-process) raised or silently returned another call's
    features. Calls take turns.
    """

    def __init__(self, flatbuffer: bytes) -> None:
        import tensorflow as tf

        self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=TFLITE_THREADS)
        self._interpreter.allocate_tensors()
        (source,), (target,) = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if tuple(source["shape"]) != (1, cnn.INPUT_SIZE, cnn.INPUT_SIZE, 3) or source["dtype"] != np.float32:
            raise ArtefactError(
                f"the .tflite takes {source['dtype'].__name__}{list(source['shape'])}, not one float32 frame"
            )
        self._input, self._output = source["index"], target["index"]
        self._turn = threading.Lock()

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        features = np.empty((len(inputs), cnn.FEATURE_SIZE), dtype=np.float32)
        with self._turn:
            for index, frame in enumerate(inputs):
                self._interpreter.set_tensor(self._input, np.ascontiguousarray(frame[None], dtype=np.float32))
                self._interpreter.invoke()
                features[index] = self._interpreter.get_tensor(self._output)[0]
        return features


def load_tflite(artefact_dir: Path) -> TfliteFeatures | None:
    """The directory's .tflite, checked against the hash its manifest records; None if it has none."""
    artefacts = read_artefacts(artefact_dir)
    name = artefacts.manifest["server_files"].get("cnn_tflite")
    if name is None:
        return None
    flatbuffer = (Path(artefact_dir) / name).read_bytes()
    expected = artefacts.manifest["server_hashes"]["cnn_tflite"]
    if hashlib.sha256(flatbuffer).hexdigest() != expected:
        raise ArtefactError(f"{artefact_dir}/{name} does not hash to {expected}")
    return TfliteFeatures(flatbuffer)


@functools.lru_cache(maxsize=2)
def feature_runtime(artefact_dir: str) -> FeatureRuntime:
    """The runtime for this artefact directory, loaded once per process (the interpreter is reused by every frame)."""
    tflite = load_tflite(Path(artefact_dir))
    if tflite is not None:
        return tflite
    logger.warning(
        "%s has no %s: server recomputations run on Keras (about 4x the CPU); run `manage.py build_models`",
        artefact_dir,
        cnn.TFLITE_FILE,
    )
    return functools.partial(cnn.features_of_inputs, cnn.cached_feature_extractor(artefact_dir))


def browser_input(frame: av.VideoFrame) -> np.ndarray:
    """float32[224, 224, 3]: the CNN input of a decoded frame as the browser paints and resizes it."""
    rows, cols = cnn.resize_taps(frame.height), cnn.resize_taps(frame.width)
    return cnn.input_from_pixels(frames.frame_to_rgb_at(frame, rows.needed, cols.needed), rows, cols)


def features_at(path: str | Path, sample_ms: Sequence[int], artefact_dir: str | Path) -> np.ndarray:
    """float32[N, 1280] features of the file's frames nearest these times: each frame decoded once, in time order."""
    runtime = feature_runtime(str(artefact_dir))
    if not len(sample_ms):
        return np.zeros((0, cnn.FEATURE_SIZE), dtype=np.float32)
    return runtime(frames.decode_frames_at(path, sample_ms, convert=browser_input, thread_type=DECODE_THREAD_TYPE))


def features_of_rgb(artefact_dir: str | Path, frames_rgb: np.ndarray) -> np.ndarray:
    """float32[N, 1280] features of whole uint8 RGB frames (other browsers' paintings of a frame)."""
    if len(frames_rgb) == 0:
        return np.zeros((0, cnn.FEATURE_SIZE), dtype=np.float32)
    return feature_runtime(str(artefact_dir))(np.asarray(cnn.preprocess(frames_rgb), dtype=np.float32))
