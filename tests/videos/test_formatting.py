"""One clock format for durations and moments, used by uploads' errors and both apps' templates."""

from __future__ import annotations

import pytest

from moderation.templatetags.moderation_tags import mmss
from videos.formatting import format_clock
from videos.templatetags.video_format import clock


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(None, ""), (0, "0:00"), (999, "0:01"), (61_400, "1:01"), (1_234_567, "20:35"), (3_723_000, "1:02:03")],
)
def test_durations_round_to_the_second(ms, expected):
    assert format_clock(ms) == expected == clock(ms)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(None, "0:00"), (4000, "0:04"), (4500, "0:04.5"), (4599, "0:04.5"), (59_999, "0:59.9"), (3_600_100, "1:00:00.1")],
)
def test_moments_keep_tenths_cut_not_rounded(ms, expected):
    assert mmss(ms) == expected
    if ms is not None:
        assert format_clock(ms, tenths=True) == expected
