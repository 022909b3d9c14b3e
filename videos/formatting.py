"""How Hydra writes a duration or a moment of a video: like a player's clock (m:ss, h:mm:ss past an hour)."""

from __future__ import annotations


def format_clock(ms: float | None, *, tenths: bool = False) -> str:
    """1234567 -> "20:35"; 3723000 -> "1:02:03"; None -> "".

    Durations round to the nearest second. ``tenths=True`` is for moments inside a video (a sample,
    a flagged segment): the time is cut, not rounded, to tenths, which are shown only when not zero,
    so 4500 -> "0:04.5" and 4000 -> "0:04".
    """
    if ms is None:
        return ""
    in_tenths = int(ms) // 100 if tenths else round(ms / 1000) * 10
    whole_seconds, tenth = divmod(in_tenths, 10)
    minutes, seconds = divmod(whole_seconds, 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{clock}.{tenth}" if tenth else clock
