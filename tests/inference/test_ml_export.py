"""The Keras 3 -> TF.js layers-model exporter."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from inference.ml.export import ExportError, content_hash, dequantise_weight, keras2_topology, quantise_weight


def test_weight_quantisation_error_is_half_a_step():
    values = np.random.default_rng(0).normal(size=(3, 3, 8, 4)).astype(np.float32)
    codes, scale, low = quantise_weight(values)
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    assert low == pytest.approx(values.min())
    assert np.abs(dequantise_weight(codes, scale, low) - values).max() <= scale / 2 + 1e-7


def test_constant_tensor_survives():
    codes, scale, low = quantise_weight(np.full((4,), 0.25, dtype=np.float32))
    assert dequantise_weight(codes, scale, low).tolist() == [0.25] * 4


def test_model_json_is_keras2_layers_format(model_artefacts):
    model_json = json.loads((model_artefacts.directory / "model.json").read_text())
    assert model_json["format"] == "layers-model"
    topology = model_json["modelTopology"]
    assert topology["keras_version"] == "2.2.4"
    config = topology["model_config"]["config"]
    layers = {layer["name"]: layer for layer in config["layers"]}
    assert layers["input"]["config"]["batch_input_shape"] == [None, 224, 224, 3]
    assert layers["Conv1"]["config"]["padding"] == "same"
    assert layers["block_2_add"]["inbound_nodes"] == [
        [["block_1_project_BN", 0, 0, {}], ["block_2_project_BN", 0, 0, {}]]
    ]
    assert config["input_layers"] == [["input", 0, 0]]
    assert config["output_layers"] == [["features", 0, 0]]
    text = json.dumps(model_json)
    for keras3_only in ('"module"', '"registered_name"', '"build_config"', "DTypePolicy"):
        assert keras3_only not in text
    names = [spec["name"] for spec in model_json["weightsManifest"][0]["weights"]]
    assert "expanded_conv_depthwise/depthwise_kernel" in names
    assert all(spec["quantization"]["dtype"] == "uint8" for spec in model_json["weightsManifest"][0]["weights"])


def test_size_is_the_shipped_uint8_size(model_artefacts):
    shards = model_artefacts.browser_files[1:]
    total = sum((model_artefacts.directory / name).stat().st_size for name in shards)
    # 2,257,984 one-byte weights: the CNN chunk of nsfwjs's 2.62 MB (the dense head stays on the server).
    assert total == 2_257_984


def test_content_hash_covers_every_browser_byte_in_order(model_artefacts):
    directory, files = model_artefacts.directory, model_artefacts.browser_files
    expected = hashlib.sha256(b"".join((directory / name).read_bytes() for name in files)).hexdigest()
    assert content_hash(directory, files) == expected == model_artefacts.content_hash == directory.name


def test_layers_it_cannot_translate_are_refused():
    import keras

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ExportError, match="Dense"):
        keras2_topology(model)
    leaky = keras.Model(inputs, keras.layers.ReLU(negative_slope=0.1)(inputs))
    with pytest.raises(ExportError, match="negative_slope"):
        keras2_topology(leaky)
