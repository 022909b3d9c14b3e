"""Protocol fuzzing: malformed messages raise ProtocolError (never anything else) and store nothing."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import protocol
from inference.models import FrameFeature

LIMITS = protocol.BatchLimits(max_batch=16, max_message_bytes=64 * 1024, rate_per_second=4.0, burst=16)
FEATURE_SIZE = 1280
JSON_VALUES = st.one_of(
    st.none(), st.integers(), st.text(max_size=70), st.sampled_from(["hello", "wasm", "webgl", "abcdefgh12"])
)


def _near_valid_batches() -> st.SearchStrategy[bytes]:
    """Headers that are almost right (the interesting corner of the input space), with random tails."""
    return st.builds(
        lambda magic, version, kind, seq, count, size, tail: (
            struct.pack("<2sBBIHH", magic, version, kind, seq, count, size) + tail
        ),
        st.sampled_from([b"HF", b"FH", b"\x00\x00"]),
        st.sampled_from([0, 1, 2, 255]),
        st.sampled_from([0, 1, 2]),
        st.integers(0, 2**32 - 1),
        st.sampled_from([0, 1, 2, 16, 17, 65535]),
        st.sampled_from([0, 1279, 1280, 1281, 65535]),
        st.binary(max_size=3 * (8 + FEATURE_SIZE)),
    )


@settings(max_examples=6000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=4096), _near_valid_batches()))
def test_binary_decoder_only_raises_protocol_errors(data):
    try:
        batch = protocol.decode_feature_batch(data, feature_size=FEATURE_SIZE, limits=LIMITS)
    except protocol.ProtocolError as error:
        assert error.code in protocol.ErrorCode
        return
    # Whatever decodes is exactly well formed.
    assert 1 <= len(batch.samples) <= LIMITS.max_batch
    assert all(len(s.vector) == FEATURE_SIZE for s in batch.samples)


@settings(max_examples=4000, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(["type", "backend", "device_id", "x"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=70),
                st.sampled_from(["hello", "wasm", "webgl", "abcdefgh12"]),
            ),
        ).map(lambda d: __import__("json").dumps(d)),
    )
)
def test_text_parser_only_raises_protocol_errors(text):
    try:
        hello = protocol.parse_text_message(text)
    except protocol.ProtocolError as error:
        assert error.code in protocol.ErrorCode
        return
    assert hello.backend in protocol.BACKENDS


@pytest.mark.django_db(transaction=True)
def test_malformed_messages_through_the_consumer_store_nothing(ready_video, model_version, settings):
    """A subset end to end: the consumer answers each malformed message with an error and stores nothing."""
    from channels.testing import WebsocketCommunicator

    from hydra_site.asgi import application

    settings.HYDRA_WS_MAX_ERRORS = 10_000
    settings.HYDRA_WS_RATE_PER_SECOND = 10_000.0
    settings.HYDRA_WS_RATE_BURST = 10_000
    settings.HYDRA_RATE_LIMITS = {name: (100_000, 60) for name in settings.HYDRA_RATE_LIMITS}
    video = ready_video("fuzzed")

    async def run() -> int:
        communicator = WebsocketCommunicator(
            application, f"/ws/analysis/{video.slug}/", headers=[(b"origin", b"http://testserver")]
        )
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from())["type"] == "handshake"
        await communicator.send_to(text_data='{"type":"hello","backend":"wasm","device_id":"fuzzdevice1"}')
        assert (await communicator.receive_json_from())["type"] == "ready"
        errors = 0
        for i in range(300):
            payload = (
                bytes((i * 37 + k) % 256 for k in range(1 + i % 97))
                if i % 3
                else struct.pack("<2sBBIHH", b"HF", 1, 1, i, 1, 1280) + b"\x00" * (i % 50)
            )
            await communicator.send_to(bytes_data=payload)
            answer = await communicator.receive_json_from()
            assert answer["type"] == "error" and answer["code"] in set(protocol.ErrorCode)
            errors += 1
        await communicator.disconnect()
        return errors

    assert asyncio.run(run()) == 300
    assert not FrameFeature.objects.filter(video=video).exists()
