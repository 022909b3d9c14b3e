"""Verification runs the nudity head once per batch: ``batch_head`` must answer exactly as the head would."""

from __future__ import annotations

import numpy as np

from inference.trust.agreement import compare_to_reference
from inference.trust.verification import batch_head


class CountingHead:
    """A softmax head (fixed random weights) that records how many rows each call scored."""

    def __init__(self, features: int = 16, classes: int = 5) -> None:
        self.weights = np.random.default_rng(3).normal(size=(features, classes)).astype(np.float32)
        self.calls: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        logits = np.asarray(x, dtype=np.float32) @ self.weights
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_batch_head_scores_the_batch_once_and_answers_like_the_head():
    rng = np.random.default_rng(1)
    batch = [rng.uniform(0, 6, 16).astype(np.float32) for _ in range(6)]
    head = CountingHead()
    batched = batch_head(head, batch)
    assert head.calls == [6]

    plain = [compare_to_reference(batch[i], np.stack(batch[i + 1 :]), head) for i in range(5)]
    head.calls.clear()
    cached = [compare_to_reference(batch[i], np.stack(batch[i + 1 :]), batched) for i in range(5)]
    assert head.calls == []  # every comparison answered from the batch's probabilities
    for got, want in zip(cached, plain, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g.cosine == w.cosine and g.norm_ratio == w.norm_ratio
            assert abs(g.head_difference - w.head_difference) < 1e-6


def test_batch_head_scores_vectors_outside_the_batch_in_one_call():
    rng = np.random.default_rng(2)
    head = CountingHead()
    batched = batch_head(head, [rng.uniform(0, 6, 16).astype(np.float32)])
    others = rng.uniform(0, 6, (3, 16)).astype(np.float32)  # e.g. the server's other paintings of a frame
    head.calls.clear()
    np.testing.assert_allclose(batched(others), head(others), atol=1e-6)
    assert head.calls == [3, 3]  # one call for the three unseen rows, then the reference call above
    head.calls.clear()
    batched(others)
    assert head.calls == []


def test_batch_head_of_an_empty_batch_still_scores():
    head = CountingHead()
    vector = np.ones((1, 16), dtype=np.float32)
    np.testing.assert_allclose(batch_head(head, [])(vector), head(vector), atol=1e-6)
