"""When two feature vectors of the same frame say the same thing.

Honest browsers do not compute bit-identical features: GPUs decode and convert colour their own
way and features travel quantised to uint8. The tolerance is therefore measured, not guessed
(docs/trust.md, "Measured parity"): the cosine between the two vectors, the ratio of their norms
(cosine alone would accept a scaled vector) and the largest difference between the nudity head's
class probabilities (so that a perturbation small in feature space but aimed at the head's
decision boundary is caught too), and, for each head that scores windows of samples, a bound on
how far the difference can move one of its window logits (the shipped violence head is steep: a
lie within the first three measures moved its logits by 200-330, honest paintings by at most 3).
A lie that stays within all of them moves every head score by no more than the bounds
docs/trust.md states.

Pure numpy: ``inference.trust.services`` feeds it dequantised vectors from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.trust.assignment import Identity, independent_quorum

HeadProbabilities = Callable[[np.ndarray], np.ndarray]
"""Maps float32[N, feature_size] features to float32[N, classes] probabilities."""

SEVERE_QUORUM = 2
"""Independent agreeing replicas from which a sample needs no borderline rule: the heads score its most severe
replica, so a lie there hides nothing unless every one of them lies (docs/trust.md, defence 10)."""


@dataclass(frozen=True)
class Tolerance:
    """How far two honest browsers' features of one frame may differ.

    ``window_weights`` (one float[feature_size] per window head, ``verification.window_sensitivity``)
    bound how far one sample's difference can move any window's logit of that head:
    ``|difference| @ weights`` must stay within ``max_window_difference``.
    """

    min_cosine: float
    max_norm_ratio: float
    max_head_difference: float
    max_window_difference: float = 0.0
    window_weights: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class Comparison:
    cosine: float
    norm_ratio: float
    head_difference: float
    window_difference: float = 0.0

    def within(self, tolerance: Tolerance) -> bool:
        return (
            self.cosine >= tolerance.min_cosine
            and self.norm_ratio <= tolerance.max_norm_ratio
            and self.head_difference <= tolerance.max_head_difference
            and self.window_difference <= tolerance.max_window_difference
        )


def _norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors.astype(np.float64), axis=1)


def compare_to_reference(
    reference: np.ndarray,
    others: np.ndarray,
    head: HeadProbabilities,
    window_weights: Sequence[np.ndarray] = (),
) -> list[Comparison]:
    """Compare each row of ``others`` with one ``reference`` vector (``window_weights``: see ``Tolerance``)."""
    others = np.atleast_2d(others).astype(np.float64)
    reference = reference.astype(np.float64).reshape(1, -1)
    ref_norm = float(_norms(reference)[0])
    norms = _norms(others)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(norms * ref_norm > 0, (others @ reference[0]) / (norms * ref_norm), 0.0)
        ratios = np.where(
            np.minimum(norms, ref_norm) > 0, np.maximum(norms, ref_norm) / np.minimum(norms, ref_norm), np.inf
        )
    probabilities = head(np.vstack([reference, others]).astype(np.float32))
    differences = np.abs(probabilities[1:] - probabilities[:1]).max(axis=1)
    gaps = np.abs(others - reference)
    windows = np.max([gaps @ w for w in window_weights], axis=0) if window_weights else np.zeros(len(others))
    return [
        Comparison(float(c), float(r), float(d), float(w))
        for c, r, d, w in zip(cosines, ratios, differences, windows, strict=True)
    ]


@dataclass(frozen=True)
class Submission:
    """One session's features for one sample."""

    identity: Identity
    vector: np.ndarray


@dataclass(frozen=True)
class SampleOutcome:
    """What verification concluded about the submissions for one sample (session ids)."""

    accepted: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()
    needs_server: bool = False
    reason: str = ""


def judge_against_server(
    submissions: Sequence[Submission],
    server_vector: np.ndarray,
    tolerance: Tolerance,
    head: HeadProbabilities,
    alternatives: np.ndarray | None = None,
) -> SampleOutcome:
    """The server's own features are the truth: whoever is within tolerance of them was right.

    ``alternatives`` (float32[V, D]) are the server's features of the same frame painted the
    ways other honest browsers paint it (inference.trust.paintings): matching one of them is
    matching the truth too.
    """
    if not submissions:
        return SampleOutcome(reason="server only")
    sent = np.stack([s.vector for s in submissions])
    references = [server_vector, *(alternatives if alternatives is not None else [])]
    right = np.zeros(len(submissions), dtype=bool)
    for reference in references:
        right |= [c.within(tolerance) for c in compare_to_reference(reference, sent, head, tolerance.window_weights)]
    accepted = {s.identity.session_id for s, ok in zip(submissions, right, strict=True) if ok}
    rejected = {s.identity.session_id for s in submissions} - accepted
    return SampleOutcome(frozenset(accepted), frozenset(rejected), reason="server recomputed")


NearThreshold = Callable[[np.ndarray], bool]
"""float32[N, feature_size] -> True when any row scores within the margin of any per-frame head's threshold."""


def judge_by_peers(
    submissions: Sequence[Submission],
    tolerance: Tolerance,
    head: HeadProbabilities,
    *,
    replicas: int,
    near_threshold: NearThreshold | None = None,
) -> SampleOutcome:
    """Accept when every submission agrees with every other and enough of them are independent.

    Any disagreement is a dispute that only the server can settle: peers never outvote each
    other, because a majority can be a botnet. With ``replicas=1`` (no second opinion asked
    for) one independent submission is enough, and spot checks are the only check on it.

    A sample that rests on fewer than ``SEVERE_QUORUM`` independent replicas (``replicas=1``) and
    scores within the margin of a threshold (``near_threshold``) counts only once the server
    computed it: a lie inside the tolerance is never caught, and the margin exceeds what one can
    move a score (docs/trust.md). From ``SEVERE_QUORUM`` on, the heads score the sample's most
    severe replica, so one honest replica keeps the decision and the margin is not needed.
    """
    if not submissions or len(submissions) < replicas:
        return SampleOutcome(reason="waiting for an independent replica")
    for i, first in enumerate(submissions[:-1]):
        rest = np.stack([s.vector for s in submissions[i + 1 :]])
        comparisons = compare_to_reference(first.vector, rest, head, tolerance.window_weights)
        if not all(c.within(tolerance) for c in comparisons):
            return SampleOutcome(needs_server=True, reason="replicas disagree")
    independent = len(independent_quorum(s.identity for s in submissions))
    if independent < replicas:
        return SampleOutcome(reason="waiting for an independent replica")
    if (
        independent < SEVERE_QUORUM
        and near_threshold is not None
        and near_threshold(np.stack([s.vector for s in submissions]))
    ):
        return SampleOutcome(needs_server=True, reason="near a head's threshold")
    return SampleOutcome(accepted=frozenset(s.identity.session_id for s in submissions), reason="replicas agree")
