import pytest

from inference.sampling import sample_times_ms, seek_time_seconds


def test_one_sample_per_second_on_frame_boundaries():
    assert sample_times_ms(3000, 24, 1000) == [0, 1000, 2000]
    assert sample_times_ms(3000, 30, 500) == [0, 500, 1000, 1500, 2000, 2500]


def test_non_integer_frame_rate_snaps_to_frames():
    times = sample_times_ms(4000, 29.97, 1000)
    frame_ms = 1000 / 29.97
    assert len(times) == 4
    for t in times:
        assert abs(t / frame_ms - round(t / frame_ms)) < 0.02


def test_short_video_still_has_its_first_frame():
    assert sample_times_ms(40, 25, 1000) == [0]


def test_seek_lands_in_the_middle_of_the_frame():
    assert seek_time_seconds(1000, 25) == pytest.approx(1.02)


@pytest.mark.parametrize("fps", [0, -1, float("nan")])
def test_bad_frame_rate_is_refused(fps):
    with pytest.raises(ValueError):
        sample_times_ms(1000, fps, 1000)
