"""Per-sample scores to flagged segments: merging, minimum length, thresholds at the edges."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.ml.segments import SegmentPolicy, flagged_segments, top_frames

SPAN = 1000


def segments(scores, *, duration_ms=None, **policy):
    times = [i * SPAN for i in range(len(scores))]
    duration = duration_ms if duration_ms is not None else len(scores) * SPAN
    return flagged_segments(times, scores, span_ms=SPAN, duration_ms=duration, policy=SegmentPolicy(**policy))


def test_one_run_above_threshold_is_one_segment_with_its_highest_score():
    assert segments([0.1, 0.8, 0.9, 0.75, 0.2], threshold=0.7) == [(1000, 4000, 0.9)]


def test_nothing_above_threshold_gives_no_segment():
    assert segments([0.1, 0.69, 0.5], threshold=0.7) == []


def test_a_score_equal_to_the_threshold_counts():
    assert segments([0.2, 0.7, 0.2], threshold=0.7) == [(1000, 2000, 0.7)]


def test_segments_touching_the_start_and_the_end_of_the_video_are_clipped_to_it():
    # The last sample stands for 1000 ms but the video ends 400 ms after it.
    assert segments([0.9, 0.1, 0.1, 0.95], threshold=0.7, duration_ms=3400) == [(0, 1000, 0.9), (3000, 3400, 0.95)]


def test_edge_threshold_extends_a_segment_over_its_fading_edges():
    scores = [0.1, 0.55, 0.8, 0.6, 0.3]
    assert segments(scores, threshold=0.7) == [(2000, 3000, 0.8)]
    assert segments(scores, threshold=0.7, edge_threshold=0.5) == [(1000, 4000, 0.8)]


def test_a_run_of_edge_scores_without_a_core_sample_is_not_a_segment():
    assert segments([0.6, 0.65, 0.6], threshold=0.7, edge_threshold=0.5) == []


def test_close_segments_merge_across_a_short_gap():
    scores = [0.9, 0.2, 0.8, 0.1, 0.1, 0.1, 0.85]
    assert segments(scores, threshold=0.7) == [(0, 1000, 0.9), (2000, 3000, 0.8), (6000, 7000, 0.85)]
    assert segments(scores, threshold=0.7, max_gap_ms=1000) == [(0, 3000, 0.9), (6000, 7000, 0.85)]
    assert segments(scores, threshold=0.7, max_gap_ms=3000) == [(0, 7000, 0.9)]


def test_missing_samples_split_a_run_unless_the_gap_is_merged():
    times = [0, 1000, 4000, 5000]
    policy = SegmentPolicy(threshold=0.5)
    assert flagged_segments(times, [0.9] * 4, span_ms=SPAN, duration_ms=6000, policy=policy) == [
        (0, 2000, 0.9),
        (4000, 6000, 0.9),
    ]
    merged = SegmentPolicy(threshold=0.5, max_gap_ms=2000)
    assert flagged_segments(times, [0.9] * 4, span_ms=SPAN, duration_ms=6000, policy=merged) == [(0, 6000, 0.9)]


def test_minimum_length_drops_short_segments_after_merging():
    scores = [0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9]
    assert segments(scores, threshold=0.7, min_length_ms=2000) == []
    # Merging first makes the first two long enough to stay; the lone last one still goes.
    assert segments(scores, threshold=0.7, max_gap_ms=1000, min_length_ms=2000) == [(0, 3000, 0.9)]


def test_unsorted_input_is_ordered_by_time():
    policy = SegmentPolicy(threshold=0.5)
    assert flagged_segments([2000, 0, 1000], [0.9, 0.1, 0.8], span_ms=SPAN, duration_ms=3000, policy=policy) == [
        (1000, 3000, 0.9)
    ]


def test_jittered_sample_times_do_not_overlap():
    # 29.97 fps snapping makes neighbours closer than the interval: a sample ends where the next begins.
    policy = SegmentPolicy(threshold=0.5)
    assert flagged_segments([0, 968, 1935], [0.9, 0.1, 0.1], span_ms=SPAN, duration_ms=3000, policy=policy) == [
        (0, 968, 0.9)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"threshold": 0.5, "edge_threshold": 0.6},
        {"threshold": 0.5, "max_gap_ms": -1},
        {"threshold": 0.5, "min_length_ms": -5},
    ],
)
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        SegmentPolicy(**kwargs)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 sample times but 1 scores"):
        flagged_segments([0, 1000], [0.5], span_ms=SPAN, duration_ms=2000, policy=SegmentPolicy(threshold=0.5))


def test_top_frames_are_highest_first_then_earliest():
    assert top_frames([0, 1000, 2000, 3000], [0.5, 0.9, 0.9, 0.1], count=3) == [[1000, 0.9], [2000, 0.9], [0, 0.5]]


@given(
    st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=40),
    st.floats(min_value=0.05, max_value=1),
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=0, max_value=3000),
)
def test_segments_are_ordered_disjoint_inside_the_video_and_contain_a_core_sample(scores, threshold, gap, min_len):
    result = segments(scores, threshold=threshold, max_gap_ms=gap, min_length_ms=min_len)
    duration = len(scores) * SPAN
    for start, end, top in result:
        assert 0 <= start < end <= duration
        assert end - start >= min_len
        assert top >= threshold
        inside = [s for i, s in enumerate(scores) if start <= i * SPAN < end]
        assert max(inside) == top
    for (_s1, end1, _t1), (start2, _e2, _t2) in itertools.pairwise(result):
        assert start2 - end1 > gap
    if min_len == 0 and any(s >= threshold for s in scores):
        assert result
