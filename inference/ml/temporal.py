"""The temporal head: an LSTM over sliding windows of consecutive frame features.

This follows the CNN + recurrent network design of LRCN and of Sudhakaran & Lanz (2017), who
detect violence from the sequence of per-frame CNN features and feed the differences between
neighbouring frames as well, because motion (how fast the picture changes) is what separates a
fight from a hug. Here the CNN features are the 1280-d MobileNetV2 vectors that browsers already
computed; the server only runs this small network on them. ``inputs`` chooses what the network
sees per sample: the features, their differences (motion only, as Sudhakaran & Lanz), or both.

A video's samples ``f_0 .. f_{n-1}`` are cut into windows of ``window`` consecutive samples every
``stride`` samples; the last window always ends at the last sample so the tail is scored too. A
video shorter than one window is padded at the front with copies of its first sample (for the
difference channel that reads as "no motion", a neutral value). Each window gets one score in
[0, 1]; a sample's score is the highest score among the windows that contain it.

Keras is imported inside the functions that need it: importing this module costs nothing, so the
web process never loads TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
INPUT_MODES = ("features", "differences", "both")


@dataclass(frozen=True)
class TemporalConfig:
    """Shape of the temporal head; stored next to its weights and in the head version's config."""

    window: int = 5
    stride: int = 1
    inputs: str = "both"
    projection_units: int = 64
    lstm_units: int = 32
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must hold at least 2 samples")
        if not 1 <= self.stride <= self.window:
            raise ValueError("stride must be between 1 and window")
        if self.inputs not in INPUT_MODES:
            raise ValueError(f"inputs must be one of {INPUT_MODES}, got {self.inputs!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be within [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sequence_inputs(features: np.ndarray, inputs: str) -> np.ndarray:
    """Per-sample network input: the features, their change ``f_t - f_{t-1}`` (zero for the first), or both."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"expected a non-empty [samples, features] array, got shape {features.shape}")
    differences = np.zeros_like(features)
    differences[1:] = features[1:] - features[:-1]
    if inputs == "features":
        return features
    if inputs == "differences":
        return differences
    return np.concatenate([features, differences], axis=1)


def window_bounds(n_samples: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` sample indices of each window; the last one ends at the last sample."""
    if n_samples <= 0:
        return []
    if n_samples <= window:
        return [(0, n_samples)]
    starts = list(range(0, n_samples - window + 1, stride))
    if starts[-1] != n_samples - window:
        starts.append(n_samples - window)
    return [(start, start + window) for start in starts]


def make_windows(features: np.ndarray, config: TemporalConfig) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Windows ``[M, window, D']`` ready for the network, and the sample indices each one covers."""
    inputs = sequence_inputs(features, config.inputs)
    bounds = window_bounds(len(inputs), config.window, config.stride)
    windows = np.stack([_padded(inputs[start:end], config.window) for start, end in bounds])
    return windows, bounds


def _padded(chunk: np.ndarray, window: int) -> np.ndarray:
    """Front-pad a short video with its first sample; that sample's difference channel is zero (no motion)."""
    missing = window - len(chunk)
    if missing == 0:
        return chunk
    return np.concatenate([np.repeat(chunk[:1], missing, axis=0), chunk], axis=0)


def sample_scores(n_samples: int, bounds: list[tuple[int, int]], window_scores: np.ndarray) -> np.ndarray:
    """A sample's score: the highest score of the windows that contain it."""
    scores = np.zeros(n_samples, dtype=np.float32)
    for (start, end), score in zip(bounds, window_scores, strict=True):
        scores[start:end] = np.maximum(scores[start:end], score)
    return scores


def build_temporal_model(input_size: int, config: TemporalConfig) -> keras.Model:
    """Dense projection per time step, one LSTM, a sigmoid: small enough to train on a CPU in seconds."""
    import keras

    inputs = keras.Input(shape=(config.window, input_size), name="features")
    x = keras.layers.TimeDistributed(keras.layers.Dense(config.projection_units, activation="relu"), name="project")(
        inputs
    )
    x = keras.layers.Dropout(config.dropout)(x)
    x = keras.layers.LSTM(config.lstm_units, name="lstm")(x)
    x = keras.layers.Dropout(config.dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    model = keras.Model(inputs, outputs, name="temporal_head")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def score_windows(model: keras.Model, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """One score per window, computed in batches without Keras' progress machinery."""
    scores = [
        np.asarray(model(windows[start : start + batch_size], training=False)).reshape(-1)
        for start in range(0, len(windows), batch_size)
    ]
    return np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, dtype=np.float32)


def score_sequence(model: keras.Model, features: np.ndarray, config: TemporalConfig) -> np.ndarray:
    """Per-sample scores for one video's features in time order."""
    windows, bounds = make_windows(features, config)
    return sample_scores(len(features), bounds, score_windows(model, windows))


def save_temporal_head(model: keras.Model, config: TemporalConfig, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))


def load_temporal_head(directory: Path) -> tuple[keras.Model, TemporalConfig]:
    import keras

    config = TemporalConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    return keras.saving.load_model(directory / MODEL_FILE, compile=False), config
