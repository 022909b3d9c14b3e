"""The analysis websocket's messages: building, parsing and validating them (docs/protocol.md).

Pure code: no Django, no I/O. The consumer decides what to do with a message; this module
only says whether it is well formed and what it contains. Every rejection is a
``ProtocolError`` carrying a stable code from ``ErrorCode`` and a message meant for people.

A feature batch is one binary websocket frame, little-endian::

    header   12 bytes  magic b"HF", version u8, kind u8, seq u32, count u16, feature_size u16
    items     8 bytes  per sample: sample_ms u32, inference_ms f32
    vectors   count * feature_size bytes, uint8 (quantised features, sample by sample)
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

PROTOCOL_VERSION = 1
MAGIC = b"HF"
KIND_FEATURE_BATCH = 1
HEADER = struct.Struct("<2sBBIHH")
ITEM = struct.Struct("<If")
BACKENDS = ("webgpu", "webgl", "wasm", "cpu")
MAX_INFERENCE_MS = 600_000.0
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_TEXT_MESSAGE_CHARS = 4096
# A hello is one flat object; deeper input is refused before json.loads, whose C parser raises
# RecursionError (not ValueError) near 1,000 levels, which 4,096 characters of "[" reach.
MAX_JSON_NESTING = 4


class ErrorCode(StrEnum):
    """Why a message was refused. Non-fatal unless the consumer closes the connection after it."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    BAD_HELLO = "bad_hello"
    HELLO_REQUIRED = "hello_required"
    MESSAGE_TOO_LARGE = "message_too_large"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_VERSION = "unsupported_version"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    WRONG_FEATURE_SIZE = "wrong_feature_size"
    WRONG_LENGTH = "wrong_length"
    BAD_INFERENCE_TIME = "bad_inference_time"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    UNASSIGNED_SAMPLE = "unassigned_sample"
    RATE_LIMITED = "rate_limited"
    # Fatal: sent just before the connection is closed with the matching CloseCode.
    VIDEO_UNAVAILABLE = "video_unavailable"
    NO_MODEL = "no_model"
    SESSION_MISMATCH = "session_mismatch"
    TOO_MANY_ERRORS = "too_many_errors"


class CloseCode(IntEnum):
    """Websocket close codes for fatal conditions (4000-4999 are free for applications)."""

    VIDEO_UNAVAILABLE = 4404
    SESSION_MISMATCH = 4409
    TOO_MANY_ERRORS = 4429
    NO_MODEL = 4503


class ProtocolError(Exception):
    """A message that breaks the protocol; nothing of it is stored."""

    def __init__(self, code: ErrorCode, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq


@dataclass(frozen=True)
class FrameSample:
    """One sample's feature vector as the client sent it."""

    sample_ms: int
    inference_ms: float
    vector: bytes


@dataclass(frozen=True)
class FeatureBatch:
    seq: int
    samples: tuple[FrameSample, ...]


@dataclass(frozen=True)
class Hello:
    backend: str
    device_id: str


@dataclass(frozen=True)
class BatchLimits:
    max_batch: int
    max_message_bytes: int
    rate_per_second: float
    burst: int


def batch_size_bytes(count: int, feature_size: int) -> int:
    return HEADER.size + count * (ITEM.size + feature_size)


def encode_feature_batch(seq: int, samples: Sequence[FrameSample], feature_size: int) -> bytes:
    """The binary frame a client sends (the browser's encoder mirrors this one; tests and benches use it)."""
    parts = [HEADER.pack(MAGIC, PROTOCOL_VERSION, KIND_FEATURE_BATCH, seq, len(samples), feature_size)]
    parts.extend(ITEM.pack(s.sample_ms, s.inference_ms) for s in samples)
    parts.extend(s.vector for s in samples)
    return b"".join(parts)


def decode_feature_batch(data: bytes, *, feature_size: int, limits: BatchLimits) -> FeatureBatch:
    """Parse and check one binary frame; raises ``ProtocolError`` on the first problem found."""
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"message of {len(data)} bytes exceeds {limits.max_message_bytes}"
        )
    if len(data) < HEADER.size:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"a feature batch starts with a {HEADER.size}-byte header")
    magic, version, kind, seq, count, declared_size = HEADER.unpack_from(data)
    if magic != MAGIC or kind != KIND_FEATURE_BATCH:
        raise ProtocolError(ErrorCode.BAD_HEADER, "not a feature batch (bad magic or kind)")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"protocol version {version} is not {PROTOCOL_VERSION}", seq)
    if count == 0:
        raise ProtocolError(ErrorCode.EMPTY_BATCH, "a batch holds at least one sample", seq)
    if count > limits.max_batch:
        raise ProtocolError(ErrorCode.BATCH_TOO_LARGE, f"{count} samples exceed the limit of {limits.max_batch}", seq)
    if declared_size != feature_size:
        raise ProtocolError(
            ErrorCode.WRONG_FEATURE_SIZE, f"feature size {declared_size} is not the model's {feature_size}", seq
        )
    expected = batch_size_bytes(count, feature_size)
    if len(data) != expected:
        raise ProtocolError(
            ErrorCode.WRONG_LENGTH, f"{count} samples take {expected} bytes, the message has {len(data)}", seq
        )
    vectors_at = HEADER.size + count * ITEM.size
    samples = []
    seen: set[int] = set()
    for index, (sample_ms, inference_ms) in enumerate(ITEM.iter_unpack(data[HEADER.size : vectors_at])):
        if not (math.isfinite(inference_ms) and 0.0 <= inference_ms <= MAX_INFERENCE_MS):
            raise ProtocolError(
                ErrorCode.BAD_INFERENCE_TIME,
                f"inference time of sample {sample_ms} must be finite and within [0, {MAX_INFERENCE_MS:g}] ms",
                seq,
            )
        if sample_ms in seen:
            raise ProtocolError(ErrorCode.DUPLICATE_IN_BATCH, f"sample {sample_ms} appears twice in the batch", seq)
        seen.add(sample_ms)
        start = vectors_at + index * feature_size
        samples.append(FrameSample(sample_ms, inference_ms, bytes(data[start : start + feature_size])))
    return FeatureBatch(seq=seq, samples=tuple(samples))


def check_assigned(batch: FeatureBatch, assigned: Collection[int]) -> None:
    """Refuse the whole batch if any sample time was not assigned to this session."""
    unassigned = [s.sample_ms for s in batch.samples if s.sample_ms not in assigned]
    if unassigned:
        shown = ", ".join(str(ms) for ms in unassigned[:5])
        raise ProtocolError(
            ErrorCode.UNASSIGNED_SAMPLE, f"sample times not assigned to this session: {shown}", batch.seq
        )


def json_nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings ignored (linear, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_text_message(text: str) -> Hello:
    """Parse a JSON message from the client. ``hello`` is the only one protocol 1 defines."""
    if len(text) > MAX_TEXT_MESSAGE_CHARS:
        raise ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"text messages are limited to {MAX_TEXT_MESSAGE_CHARS} chars")
    if json_nesting_depth(text) > MAX_JSON_NESTING:
        raise ProtocolError(ErrorCode.BAD_JSON, f"JSON nested deeper than {MAX_JSON_NESTING} levels")
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "a text message is a JSON object")
    if message.get("type") != "hello":
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {message.get('type')!r}")
    backend, device_id = message.get("backend"), message.get("device_id")
    if backend not in BACKENDS:
        raise ProtocolError(ErrorCode.BAD_HELLO, f"backend must be one of {', '.join(BACKENDS)}")
    if not isinstance(device_id, str) or not DEVICE_ID_PATTERN.match(device_id):
        raise ProtocolError(ErrorCode.BAD_HELLO, "device_id must be 8-64 characters of [A-Za-z0-9_-]")
    return Hello(backend=backend, device_id=device_id)


def handshake_message(
    *,
    session_id: str,
    video_slug: str,
    model: dict[str, Any],
    fps: float,
    sample_ms: Sequence[int],
    done_ms: Sequence[int],
    limits: BatchLimits,
) -> dict[str, Any]:
    """The first message of every connection: everything the client needs to start working."""
    return {
        "type": "handshake",
        "protocol": PROTOCOL_VERSION,
        "session": session_id,
        "video": video_slug,
        "model": model,
        "fps": fps,
        "sample_ms": list(sample_ms),
        "done_ms": list(done_ms),
        "limits": {
            "max_batch": limits.max_batch,
            "max_message_bytes": limits.max_message_bytes,
            "rate_per_second": limits.rate_per_second,
            "burst": limits.burst,
        },
    }


def ack_message(seq: int, accepted: Sequence[int], duplicates: Sequence[int]) -> dict[str, Any]:
    return {"type": "ack", "seq": seq, "accepted": list(accepted), "duplicates": list(duplicates)}


def error_message(code: ErrorCode, message: str, seq: int | None = None, *, fatal: bool = False) -> dict[str, Any]:
    return {"type": "error", "code": str(code), "message": message, "seq": seq, "fatal": fatal}


class TokenBucket:
    """Rate limit: ``rate`` messages per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
