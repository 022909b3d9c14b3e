import numpy as np
import pytest

from inference.ml.quantise import HIGH, LOW, QUANTISATION, STEP, dequantise, quantise


def test_round_trip_error_is_at_most_half_a_step():
    features = np.random.default_rng(0).uniform(LOW, HIGH, size=(16, 1280)).astype(np.float32)
    codes = quantise(features)
    assert codes.dtype == np.uint8 and codes.shape == features.shape
    assert np.abs(dequantise(codes) - features).max() <= STEP / 2 + 1e-6


def test_range_ends_and_clipping():
    codes = quantise(np.array([[-1.0, 0.0, 3.0, 6.0, 7.5]], dtype=np.float32))
    assert codes.tolist() == [[0, 0, 128, 255, 255]]
    assert dequantise(np.array([0, 255], dtype=np.uint8)).tolist() == [0.0, pytest.approx(6.0)]


def test_non_finite_features_are_refused():
    with pytest.raises(ValueError, match="finite"):
        quantise(np.array([0.5, np.nan], dtype=np.float32))


def test_dequantise_wants_uint8():
    with pytest.raises(ValueError, match="uint8"):
        dequantise(np.array([1, 2], dtype=np.int16))


def test_spec_matches_constants():
    assert QUANTISATION == {"dtype": "uint8", "min": 0.0, "max": 6.0}
