import json

import numpy as np
import pytest
from django.conf import settings

from inference.ml.nsfw_head import head_from_nsfwjs, load_nsfw_head, softmax
from inference.ml.nsfwjs import CLASS_NAMES, NsfwjsError, dequantise_weights, load_nsfwjs


@pytest.fixture(scope="module")
def nsfwjs_model():
    return load_nsfwjs(settings.HYDRA_NSFWJS_DIR)


def test_reads_the_shipped_mobilenet(nsfwjs_model):
    assert nsfwjs_model.version == "4.4.0"
    assert nsfwjs_model.topology["keras_version"] == "2.2.4"
    assert len(nsfwjs_model.weights) == 266
    assert nsfwjs_model.weights["Conv1/kernel"].shape == (3, 3, 3, 32)
    assert nsfwjs_model.weights["dense_3/kernel"].shape == (128, 5)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in nsfwjs_model.weights.values())
    layer_names = [layer["name"] for layer in nsfwjs_model.layers]
    assert layer_names[-8:] == [
        "out_relu",
        "average_pooling2d_1",
        "flatten_1",
        "dense_1",
        "dropout_2",
        "dense_2",
        "dropout_3",
        "dense_3",
    ]


def test_dequantises_like_tfjs():
    manifest = [
        {
            "paths": ["x"],
            "weights": [
                {
                    "name": "a",
                    "shape": [2, 2],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.5},
                },
                {"name": "b", "shape": [1], "dtype": "float32"},
            ],
        }
    ]
    data = bytes([0, 1, 2, 255]) + np.array([3.25], dtype=np.float32).tobytes()
    weights = dequantise_weights(manifest, data)
    assert weights["a"].tolist() == [[-1.0, -0.5], [0.0, 126.5]]
    assert weights["b"].tolist() == [3.25]
    with pytest.raises(NsfwjsError, match="bytes"):
        dequantise_weights(manifest, data + b"\0")


def test_missing_package_is_a_clear_error(tmp_path):
    with pytest.raises(NsfwjsError, match="npm ci"):
        load_nsfwjs(tmp_path)
    (tmp_path / "package.json").write_text(json.dumps({"version": "4.4.0"}))
    with pytest.raises(NsfwjsError, match="missing nsfwjs model file"):
        load_nsfwjs(tmp_path)


def test_nsfw_head_is_the_shipped_dense_layers(nsfwjs_model, tmp_path):
    head = head_from_nsfwjs(nsfwjs_model)
    assert head.class_names == CLASS_NAMES == ("drawing", "hentai", "neutral", "porn", "sexy")
    features = np.random.default_rng(1).uniform(0, 3, size=(4, 1280)).astype(np.float32)
    probabilities = head.predict(features)
    assert probabilities.shape == (4, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # The same maths written out layer by layer with the raw weights.
    w = nsfwjs_model.weights
    hidden = np.maximum(features @ w["dense_1/kernel"] + w["dense_1/bias"], 0)
    hidden = np.maximum(hidden @ w["dense_2/kernel"] + w["dense_2/bias"], 0)
    np.testing.assert_allclose(probabilities, softmax(hidden @ w["dense_3/kernel"] + w["dense_3/bias"]), atol=1e-6)
    head.save(tmp_path / "head.npz")
    reloaded = load_nsfw_head(tmp_path / "head.npz")
    assert reloaded.class_names == head.class_names
    np.testing.assert_array_equal(reloaded.predict(features), probabilities)
    with pytest.raises(ValueError, match="1280"):
        head.predict(features[:, :100])
