"""The server's Keras CNN chunk against nsfwjs's own network and against the browser export, both run by TF.js."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.ml import cnn, export
from inference.ml.nsfw_head import load_nsfw_head
from inference.ml.nsfwjs import dequantise_weights
from inference.ml.tfjs import run_tfjs
from videos.synthetic import iter_frames


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Three frames that are not 224x224, so the bilinear resize is part of what is compared."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(180, 240, 3), dtype=np.uint8)
    bars = next(iter_frames("bars", 1, 24, 240, 180))
    calm = next(iter_frames("calm", 1, 24, 240, 180))
    return np.stack([noise, bars, calm])


@pytest.mark.slow
def test_keras_and_numpy_head_match_nsfwjs_run_by_tfjs(frames, feature_extractor, model_artefacts, settings):
    tfjs = run_tfjs(frames, ["flatten_1", "dense_3"], nsfwjs_dir=settings.HYDRA_NSFWJS_DIR)
    features = cnn.compute_features(feature_extractor, frames)
    probabilities = load_nsfw_head(model_artefacts.directory / "nsfw_head.npz").predict(features)
    assert features.shape == (3, 1280)
    assert cosine(features, tfjs["flatten_1"]).min() >= 0.9999
    assert np.abs(probabilities - tfjs["dense_3"]).max() <= 1e-3
    assert (probabilities.argmax(axis=1) == tfjs["dense_3"].argmax(axis=1)).all()


@pytest.mark.slow
def test_browser_export_loads_in_tfjs_and_computes_the_keras_features(frames, feature_extractor, model_artefacts):
    tfjs = run_tfjs(frames, ["features"], model_dir=model_artefacts.directory)
    features = cnn.compute_features(feature_extractor, frames)
    assert cosine(features, tfjs["features"]).min() >= 0.9999
    assert np.abs(features - tfjs["features"]).max() < 1e-3


@pytest.mark.slow
def test_tflite_export_computes_the_keras_features_at_batch_1(frames, feature_extractor, model_artefacts):
    """The .tflite that the server's fastest path and the LiteRT.js candidate run is the Keras function."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=export.tflite_flatbuffer(feature_extractor), num_threads=1)
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(source["shape"]) == [1, 224, 224, 3]  # LiteRT.js needs the batch fixed
    assert source["dtype"] == np.float32  # no quantisation
    inputs = np.asarray(cnn.preprocess(frames), dtype=np.float32)
    features = []
    for frame in inputs:
        interpreter.set_tensor(source["index"], frame[None])
        interpreter.invoke()
        features.append(interpreter.get_tensor(target["index"])[0].copy())
    tflite = np.stack(features)
    keras_features = cnn.compute_features(feature_extractor, frames)
    head = load_nsfw_head(model_artefacts.directory / "nsfw_head.npz")
    assert cosine(tflite, keras_features).min() >= 0.99999
    assert (head.predict(tflite).argmax(axis=1) == head.predict(keras_features).argmax(axis=1)).all()


def test_server_weights_are_the_browser_weights_bit_for_bit(feature_extractor, model_artefacts):
    directory = model_artefacts.directory
    model_json = json.loads((directory / "model.json").read_text())
    manifest = model_json["weightsManifest"]
    data = b"".join((directory / path).read_bytes() for group in manifest for path in group["paths"])
    browser = dequantise_weights(manifest, data)
    server = dict(cnn.weight_items(feature_extractor))
    assert set(browser) == set(server)
    for name, variable in server.items():
        assert np.array_equal(np.asarray(variable.numpy()), browser[name]), name


def test_features_lie_in_the_relu6_range_and_do_not_depend_on_batching(frames, feature_extractor):
    one_by_one = cnn.compute_features(feature_extractor, frames, batch_size=1)
    together = cnn.compute_features(feature_extractor, frames)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    assert together.min() >= 0.0 and together.max() <= 6.0
    assert cnn.compute_features(feature_extractor, frames[:0]).shape == (0, 1280)


def test_preprocessing_is_nsfwjs_s(frames):
    exact = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    exact[0, 0, 0] = [255, 0, 51]
    out = np.asarray(cnn.preprocess(exact))
    assert out.shape == (1, 224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [1.0, 0.0, 0.2], atol=1e-7)
    resized = np.asarray(cnn.preprocess(frames))
    # align_corners=True: the corners of the output are exactly the corners of the input.
    for corner_in, corner_out in (((0, 0), (0, 0)), ((-1, -1), (-1, -1)), ((0, -1), (0, -1))):
        np.testing.assert_allclose(
            resized[:, corner_out[0], corner_out[1]], frames[:, corner_in[0], corner_in[1]] / 255, atol=1e-6
        )
    with pytest.raises(ValueError, match="uint8"):
        cnn.preprocess(frames.astype(np.float32))
