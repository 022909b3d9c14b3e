"""The wire format on its own: encoding, decoding and every way a message can be refused."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference import protocol
from inference.protocol import BatchLimits, ErrorCode, FrameSample, ProtocolError

FEATURES = 16
LIMITS = BatchLimits(max_batch=4, max_message_bytes=1024, rate_per_second=2.0, burst=3)


def sample(ms: int, fill: int = 7, inference_ms: float = 12.5) -> FrameSample:
    return FrameSample(sample_ms=ms, inference_ms=inference_ms, vector=bytes([fill]) * FEATURES)


def decode(data: bytes) -> protocol.FeatureBatch:
    return protocol.decode_feature_batch(data, feature_size=FEATURES, limits=LIMITS)


def refusal(data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(data)
    return caught.value


def test_layout_is_header_then_items_then_vectors():
    data = protocol.encode_feature_batch(9, [sample(0, 1), sample(1000, 2)], FEATURES)
    assert len(data) == 12 + 2 * 8 + 2 * FEATURES == protocol.batch_size_bytes(2, FEATURES)
    assert data[:2] == b"HF"
    assert struct.unpack_from("<BBIHH", data, 2) == (1, 1, 9, 2, FEATURES)
    assert struct.unpack_from("<If", data, 12) == (0, 12.5)
    assert data[28:] == bytes([1]) * FEATURES + bytes([2]) * FEATURES


@given(
    seq=st.integers(0, 2**32 - 1),
    items=st.dictionaries(
        st.integers(0, 2**32 - 1),
        st.tuples(st.floats(0, 1000, width=32), st.binary(min_size=FEATURES, max_size=FEATURES)),
        min_size=1,
        max_size=4,
    ),
)
def test_round_trip(seq, items):
    samples = [FrameSample(ms, t, vec) for ms, (t, vec) in items.items()]
    batch = decode(protocol.encode_feature_batch(seq, samples, FEATURES))
    assert batch.seq == seq
    assert batch.samples == tuple(samples)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_HEADER),
        (b"HF\x01\x01", ErrorCode.BAD_HEADER),
        (b"XX" + protocol.encode_feature_batch(1, [sample(0)], FEATURES)[2:], ErrorCode.BAD_HEADER),
        (protocol.HEADER.pack(b"HF", 1, 2, 1, 1, FEATURES), ErrorCode.BAD_HEADER),
        (protocol.HEADER.pack(b"HF", 2, 1, 1, 1, FEATURES), ErrorCode.UNSUPPORTED_VERSION),
        (protocol.HEADER.pack(b"HF", 1, 1, 1, 0, FEATURES), ErrorCode.EMPTY_BATCH),
        (protocol.HEADER.pack(b"HF", 1, 1, 1, 5, FEATURES), ErrorCode.BATCH_TOO_LARGE),
        (protocol.encode_feature_batch(1, [sample(0)], FEATURES)[:-1], ErrorCode.WRONG_LENGTH),
        (protocol.encode_feature_batch(1, [sample(0)], FEATURES) + b"\0", ErrorCode.WRONG_LENGTH),
        (bytes(1025), ErrorCode.MESSAGE_TOO_LARGE),
        (protocol.encode_feature_batch(1, [sample(0), sample(0)], FEATURES), ErrorCode.DUPLICATE_IN_BATCH),
    ],
)
def test_malformed_batches_are_refused_with_their_code(data, code):
    assert refusal(data).code == code


def test_feature_size_must_be_the_models():
    data = protocol.encode_feature_batch(3, [FrameSample(0, 1.0, bytes(FEATURES + 1))], FEATURES + 1)
    error = refusal(data)
    assert (error.code, error.seq) == (ErrorCode.WRONG_FEATURE_SIZE, 3)


@pytest.mark.parametrize("inference_ms", [math.nan, math.inf, -math.inf, -1.0, 1e9])
def test_inference_time_must_be_finite_and_in_range(inference_ms):
    data = protocol.encode_feature_batch(4, [sample(0), sample(1000, inference_ms=inference_ms)], FEATURES)
    error = refusal(data)
    assert (error.code, error.seq) == (ErrorCode.BAD_INFERENCE_TIME, 4)


def test_unassigned_sample_times_refuse_the_whole_batch():
    batch = decode(protocol.encode_feature_batch(5, [sample(0), sample(1001)], FEATURES))
    protocol.check_assigned(decode(protocol.encode_feature_batch(5, [sample(0)], FEATURES)), {0, 1000})
    with pytest.raises(ProtocolError) as caught:
        protocol.check_assigned(batch, {0, 1000})
    assert caught.value.code == ErrorCode.UNASSIGNED_SAMPLE
    assert "1001" in caught.value.message


def test_hello():
    hello = protocol.parse_text_message(json.dumps({"type": "hello", "backend": "wasm", "device_id": "abcdefgh1234"}))
    assert hello == protocol.Hello(backend="wasm", device_id="abcdefgh1234")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.BAD_JSON),
        ('{"type": "features"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "hello", "backend": "gpu", "device_id": "abcdefgh1234"}', ErrorCode.BAD_HELLO),
        ('{"type": "hello", "backend": "cpu", "device_id": "short"}', ErrorCode.BAD_HELLO),
        ('{"type": "hello", "backend": "cpu", "device_id": "has spaces in it"}', ErrorCode.BAD_HELLO),
        ('{"type": "hello", "backend": "cpu"}', ErrorCode.BAD_HELLO),
        ('{"type": "hello", "pad": "' + "x" * 5000 + '"}', ErrorCode.MESSAGE_TOO_LARGE),
    ],
)
def test_bad_text_messages(text, code):
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_text_message(text)
    assert caught.value.code == code
    assert caught.value.message


def test_token_bucket_allows_bursts_then_the_average_rate():
    bucket = protocol.TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) is True
    assert bucket.take(0.5) is False
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]


def test_error_and_ack_messages_are_json_ready():
    assert json.loads(json.dumps(protocol.ack_message(3, [0], [1000]))) == {
        "type": "ack",
        "seq": 3,
        "accepted": [0],
        "duplicates": [1000],
    }
    error = protocol.error_message(ErrorCode.RATE_LIMITED, "slow down", 4)
    assert error == {"type": "error", "code": "rate_limited", "message": "slow down", "seq": 4, "fatal": False}
