"""Serving a stored file, whole or one byte range of it, without loading it into memory.

Under ASGI (daphne) Django buffers a synchronous streaming body completely before sending
it, so ASGI requests get an asynchronous iterator that reads one chunk at a time in a
thread; WSGI requests (and the test client) get the synchronous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from videos.ranges import RangeNotSatisfiable, parse_range_header

CHUNK_BYTES = 256 * 1024


def _read_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


async def _aread_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def file_response(request: HttpRequest, path: Path, content_type: str) -> HttpResponse:
    """200 with the whole file, 206 with the one range asked for, or 416; HEAD gets the headers only."""
    size = path.stat().st_size
    try:
        byte_range = parse_range_header(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    if request.method == "HEAD":
        response = HttpResponse(status=206 if byte_range else 200, content_type=content_type)
    else:
        chunks = _aread_chunks if isinstance(request, ASGIRequest) else _read_chunks
        response = StreamingHttpResponse(
            chunks(path, start, length), status=206 if byte_range else 200, content_type=content_type
        )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if byte_range:
        response["Content-Range"] = byte_range.content_range(size)
    return response
