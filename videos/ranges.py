"""HTTP byte ranges (RFC 9110 section 14) for serving media files.

Only single ranges are honoured, which is all that ``<video>`` elements ask for. A header
that is not a byte-range header, or asks for several ranges, is ignored and the whole
file is sent (the RFC allows a server to ignore Range). A well-formed range that does
not overlap the file is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


# Byte positions beyond any file: longer digit strings are read as this (int() refuses over 4,300
# digits, and a 5,000-digit Range header must not be a 500).
_BEYOND_ANY_FILE = 10**18


def _position(digits: str) -> int:
    return int(digits) if len(digits) < 18 else _BEYOND_ANY_FILE


class RangeNotSatisfiable(Exception):
    """The requested range lies outside the file."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range_header(header: str | None, size: int) -> ByteRange | None:
    """The one range to send for ``header`` on a file of ``size`` bytes, or None to send all of it.

    Raises ``RangeNotSatisfiable`` for a well-formed range outside the file.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = _position(first)
    if last and _position(last) < start:
        return None  # syntactically invalid: ignore
    if start >= size:
        raise RangeNotSatisfiable
    end = _position(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
