"""HTTP Range on the rendition URL, as Django serves it on the embedded default: what a <video> element asks
for when it seeks."""

from __future__ import annotations

import pytest

from videos.media_urls import MediaFile, issue
from videos.ranges import ByteRange, RangeNotSatisfiable, parse_range_header


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),  # suffix longer than the file: all of it
        ("bytes=990-5000", ByteRange(990, 999)),  # end past the file is clipped
        ("BYTES = 5 - 9", ByteRange(5, 9)),
        ("bytes=0-1,5-6", None),  # several ranges: ignored, whole file
        ("items=0-10", None),
        ("bytes=abc", None),
        ("bytes=9-5", None),
        ("bytes=-", None),
    ],
)
def test_parse_range_header(header, expected):
    assert parse_range_header(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_ranges_outside_the_file_are_unsatisfiable(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range_header(header, 1000)


@pytest.fixture
def published(ready_video, owner):
    return ready_video(owner)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def get_stream(client, video, range_header=None, method="get"):
    headers = {"range": range_header} if range_header else {}
    return getattr(client, method)(issue(video, MediaFile.RENDITION), headers=headers)


def test_whole_file_without_range(client, published):
    data = published.rendition.open("rb").read()
    response = get_stream(client, published)
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(data))
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert body(response) == data


def test_first_bytes(client, published):
    data = published.rendition.open("rb").read()
    response = get_stream(client, published, "bytes=0-1023")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-1023/{len(data)}"
    assert response["Content-Length"] == "1024"
    assert body(response) == data[:1024]
    assert data[4:8] == b"ftyp"


def test_middle_range(client, published):
    data = published.rendition.open("rb").read()
    start, end = len(data) // 3, len(data) // 3 + 300_000  # spans several read chunks when the file is large
    response = get_stream(client, published, f"bytes={start}-{end}")
    assert response.status_code == 206
    stop = min(end, len(data) - 1)
    assert response["Content-Range"] == f"bytes {start}-{stop}/{len(data)}"
    assert body(response) == data[start : stop + 1]


def test_open_ended_range_as_browsers_send_it(client, published):
    data = published.rendition.open("rb").read()
    response = get_stream(client, published, "bytes=100-")
    assert response.status_code == 206
    assert body(response) == data[100:]


def test_suffix_range(client, published):
    data = published.rendition.open("rb").read()
    response = get_stream(client, published, "bytes=-500")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {len(data) - 500}-{len(data) - 1}/{len(data)}"
    assert body(response) == data[-500:]


def test_range_past_the_end_is_416(client, published):
    size = published.rendition.size
    response = get_stream(client, published, f"bytes={size}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-10,20-30", "bytes=nonsense", "pages=1-2"])
def test_multiple_or_garbage_ranges_get_the_whole_file(client, published, header):
    data = published.rendition.open("rb").read()
    response = get_stream(client, published, header)
    assert response.status_code == 200
    assert body(response) == data


def test_head_sends_headers_only(client, published):
    response = get_stream(client, published, "bytes=0-99", method="head")
    assert response.status_code == 206
    assert response["Content-Length"] == "100"
    assert response.content == b""


def test_poster_is_served_as_jpeg(client, published):
    response = client.get(issue(published, MediaFile.POSTER))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert body(response)[:3] == b"\xff\xd8\xff"


def test_stream_rejects_other_methods(client, published):
    assert client.post(issue(published, MediaFile.RENDITION)).status_code == 405


def test_ranges_with_thousands_of_digits_are_answered_not_a_500(client, published):
    """Issue 13, item 8: int() refuses strings over 4,300 digits; such positions lie beyond any file."""
    size = published.rendition.size
    huge = "9" * 5000
    response = get_stream(client, published, f"bytes={huge}-")
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{size}"
    response = get_stream(client, published, f"bytes=0-{huge}")
    assert response.status_code == 206 and response["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    response = get_stream(client, published, f"bytes=-{huge}")
    assert response.status_code == 206 and body(response) == published.rendition.open("rb").read()
