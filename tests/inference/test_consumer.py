"""The analysis websocket through the real ASGI stack (origin check, auth, routing) with WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from hydra_site.asgi import application
from inference import protocol, scheduling
from inference.consumers import REFUSAL_CLOSE_CODES, REFUSAL_ERROR_CODES
from inference.errors import RefusalReason
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.protocol import CloseCode, ErrorCode, FrameSample
from tests.inference.streaming_factories import FEATURES, make_model, make_ready_video
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


@pytest.fixture
def model_version(settings) -> ModelVersion:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    return make_model()


@pytest.fixture
def video(model_version) -> Video:
    return make_ready_video()


def sample(ms: int, fill: int = 3) -> FrameSample:
    return FrameSample(sample_ms=ms, inference_ms=40.0, vector=bytes([fill]) * FEATURES)


def batch(seq: int, *samples: FrameSample) -> bytes:
    return protocol.encode_feature_batch(seq, samples, FEATURES)


HELLO = json.dumps({"type": "hello", "backend": "wasm", "device_id": "device-0001"})


class Client:
    """A connected test client that has read the handshake (and sent hello unless told not to)."""

    def __init__(self, communicator: WebsocketCommunicator, handshake: dict) -> None:
        self.communicator = communicator
        self.handshake = handshake

    async def send_batch(self, data: bytes) -> dict:
        await self.communicator.send_to(bytes_data=data)
        return await self.communicator.receive_json_from(timeout=5)

    async def send_text(self, text: str) -> dict:
        await self.communicator.send_to(text_data=text)
        return await self.communicator.receive_json_from(timeout=5)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def connect(slug: str, *, query: str = "", hello: bool = True, origin=ORIGIN) -> Client:
    communicator = WebsocketCommunicator(application, f"/ws/analysis/{slug}/{query}", headers=[origin])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    client = Client(communicator, await communicator.receive_json_from(timeout=5))
    if hello and client.handshake["type"] == "handshake":
        ready = await client.send_text(HELLO)
        assert ready["type"] == "ready"
    return client


async def refused_with(slug: str, query: str = "") -> tuple[dict, int]:
    communicator = WebsocketCommunicator(application, f"/ws/analysis/{slug}/{query}", headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    error = await communicator.receive_json_from(timeout=5)
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    return error, closing["code"]


def stored() -> list[tuple[int, bytes]]:
    return [(f.sample_ms, bytes(f.vector)) for f in FrameFeature.objects.order_by("sample_ms")]


def test_handshake_describes_the_work_and_binds_the_session(video, model_version, settings):
    async def scenario():
        client = await connect(video.slug, hello=False)
        await client.close()
        return client.handshake

    handshake = run(scenario)
    session = ClientSession.objects.get()
    assert handshake == {
        "type": "handshake",
        "protocol": 1,
        "session": str(session.pk),
        "video": video.slug,
        "model": {
            "hash": model_version.content_hash,
            "url": f"/models/{model_version.content_hash}/model.json",
            "feature_size": FEATURES,
            "preprocessing": model_version.preprocessing,
            "quantisation": model_version.quantisation,
        },
        "fps": 24.0,
        "sample_ms": [0, 1000, 2000],
        "done_ms": [],
        "limits": {
            "max_batch": settings.HYDRA_WS_MAX_BATCH,
            "max_message_bytes": settings.HYDRA_WS_MAX_MESSAGE_BYTES,
            "rate_per_second": settings.HYDRA_WS_RATE_PER_SECOND,
            "burst": settings.HYDRA_WS_RATE_BURST,
        },
    }
    assert (session.video, session.model_version, session.state) == (video, model_version, "closed")


def test_features_are_stored_with_backend_and_timing_and_acked(video, model_version):
    async def scenario():
        client = await connect(video.slug)
        ack = await client.send_batch(batch(1, sample(0, 10), sample(2000, 200)))
        await client.close()
        return ack

    assert run(scenario) == {"type": "ack", "seq": 1, "accepted": [0, 2000], "duplicates": []}
    assert stored() == [(0, bytes([10]) * FEATURES), (2000, bytes([200]) * FEATURES)]
    rows = list(FrameFeature.objects.all())
    assert {(r.backend, r.inference_ms, r.video_id, r.model_version_id) for r in rows} == {
        ("wasm", 40.0, video.pk, model_version.pk)
    }
    session = ClientSession.objects.get()
    assert (session.backend, session.device_id) == ("wasm", "device-0001")


def test_a_replayed_sample_is_stored_once_and_reported_as_duplicate(video):
    async def scenario():
        client = await connect(video.slug)
        first = await client.send_batch(batch(1, sample(0, 1)))
        replay = await client.send_batch(batch(2, sample(0, 99), sample(1000, 2)))
        await client.close()
        return first, replay

    first, replay = run(scenario)
    assert first["accepted"] == [0]
    assert (replay["accepted"], replay["duplicates"]) == ([1000], [0])
    assert stored() == [(0, bytes([1]) * FEATURES), (1000, bytes([2]) * FEATURES)]


def test_a_client_resumes_its_session_where_it_left_off(video):
    async def scenario():
        first = await connect(video.slug)
        await first.send_batch(batch(1, sample(1000)))
        await first.close()
        session_id = first.handshake["session"]
        again = await connect(video.slug, query=f"?resume={session_id}")
        ack = await again.send_batch(batch(2, sample(0), sample(1000)))
        await again.close()
        return session_id, again.handshake, ack

    session_id, handshake, ack = run(scenario)
    assert handshake["session"] == session_id
    assert handshake["done_ms"] == [1000]
    assert (ack["accepted"], ack["duplicates"]) == ([0], [1000])
    assert ClientSession.objects.count() == 1
    assert FrameFeature.objects.count() == 2


def test_a_session_is_bound_to_its_video(video):
    other = make_ready_video("other")

    async def scenario():
        first = await connect(other.slug)
        await first.close()
        return await refused_with(video.slug, f"?resume={first.handshake['session']}")

    error, code = run(scenario)
    assert (error["code"], error["fatal"], code) == ("session_mismatch", True, CloseCode.SESSION_MISMATCH)
    assert ClientSession.objects.filter(video=video).count() == 0


def test_a_session_keeps_its_model_version_after_a_new_one_is_activated(video, model_version):
    async def scenario():
        first = await connect(video.slug)
        await first.close()
        await database_sync_to_async(activate_new_model)()
        resumed = await connect(video.slug, query=f"?resume={first.handshake['session']}")
        ack = await resumed.send_batch(batch(1, sample(0)))
        await resumed.close()
        fresh = await connect(video.slug, hello=False)
        await fresh.close()
        return resumed.handshake, ack, fresh.handshake

    def activate_new_model():
        ModelVersion.objects.update(is_active=False)
        make_model("b")

    resumed, ack, fresh = run(scenario)
    assert resumed["model"]["hash"] == "a" * 64
    assert ack["accepted"] == [0]
    assert FrameFeature.objects.get().model_version == model_version
    assert fresh["model"]["hash"] == "b" * 64


@pytest.mark.parametrize("resume", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_session_cannot_be_resumed(video, resume):
    error, code = run(lambda: refused_with(video.slug, f"?resume={resume}"))
    assert (error["code"], code) == ("session_mismatch", CloseCode.SESSION_MISMATCH)


def test_a_quarantined_session_cannot_be_resumed(video):
    async def scenario():
        first = await connect(video.slug)
        await first.close()
        await database_sync_to_async(ClientSession.objects.update)(state=ClientSession.State.QUARANTINED)
        return await refused_with(video.slug, f"?resume={first.handshake['session']}")

    error, code = run(scenario)
    assert (error["code"], code) == ("session_mismatch", CloseCode.SESSION_MISMATCH)


@pytest.mark.parametrize(
    "fields",
    [
        {"status": Video.Status.PROCESSING},
        {"visibility": Video.Visibility.REMOVED},
        {"visibility": Video.Visibility.HELD},
        {"rendition": ""},
    ],
)
def test_only_videos_the_viewer_may_watch_are_analysed(model_version, fields):
    hidden = make_ready_video(**fields)
    error, code = run(lambda: refused_with(hidden.slug))
    assert (error["code"], error["fatal"], code) == ("video_unavailable", True, CloseCode.VIDEO_UNAVAILABLE)
    assert ClientSession.objects.count() == 0


def test_unknown_video(model_version):
    error, code = run(lambda: refused_with("nosuchvideo"))
    assert (error["code"], code) == ("video_unavailable", CloseCode.VIDEO_UNAVAILABLE)


def test_no_active_model(video, model_version):
    ModelVersion.objects.update(is_active=False)
    error, code = run(lambda: refused_with(video.slug))
    assert (error["code"], code) == ("no_model", CloseCode.NO_MODEL)
    assert ClientSession.objects.count() == 0


def test_a_foreign_origin_is_refused_before_anything_happens(video):
    async def scenario():
        communicator = WebsocketCommunicator(
            application, f"/ws/analysis/{video.slug}/", headers=[(b"origin", b"http://evil.example")]
        )
        connected, _ = await communicator.connect(timeout=5)
        return connected

    assert run(scenario) is False
    assert ClientSession.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\x01", ErrorCode.BAD_HEADER),
        (protocol.HEADER.pack(b"HF", 9, 1, 1, 1, FEATURES) + bytes(8 + FEATURES), ErrorCode.UNSUPPORTED_VERSION),
        (protocol.HEADER.pack(b"HF", 1, 1, 1, 0, FEATURES), ErrorCode.EMPTY_BATCH),
        (batch(1, *[sample(ms) for ms in range(17)]), ErrorCode.BATCH_TOO_LARGE),
        (protocol.encode_feature_batch(1, [FrameSample(0, 1.0, bytes(1279))], 1279), ErrorCode.WRONG_FEATURE_SIZE),
        (batch(1, sample(0), sample(1000))[:-1], ErrorCode.WRONG_LENGTH),
        (batch(1, sample(0), sample(1000)) + b"\x00", ErrorCode.WRONG_LENGTH),
        (batch(1, sample(0), FrameSample(1000, float("nan"), bytes(FEATURES))), ErrorCode.BAD_INFERENCE_TIME),
        (batch(1, sample(0), FrameSample(1000, float("inf"), bytes(FEATURES))), ErrorCode.BAD_INFERENCE_TIME),
        (batch(1, sample(0), sample(0)), ErrorCode.DUPLICATE_IN_BATCH),
        (batch(1, sample(0), sample(1500)), ErrorCode.UNASSIGNED_SAMPLE),
        (batch(1, sample(0), sample(3000)), ErrorCode.UNASSIGNED_SAMPLE),
        (bytes(70_000), ErrorCode.MESSAGE_TOO_LARGE),
    ],
)
def test_a_bad_batch_stores_nothing_and_the_connection_survives(video, data, code, settings):
    settings.HYDRA_WS_MAX_BATCH = 16  # the limits the cases above are built against
    settings.HYDRA_WS_MAX_MESSAGE_BYTES = 64 * 1024

    async def scenario():
        client = await connect(video.slug)
        error = await client.send_batch(data)
        after = await client.send_batch(batch(2, sample(2000)))
        await client.close()
        return error, after

    error, after = run(scenario)
    assert (error["type"], error["code"], error["fatal"]) == ("error", str(code), False)
    assert error["message"]
    assert after["accepted"] == [2000]
    assert [ms for ms, _ in stored()] == [2000]


def test_features_before_hello_are_refused(video):
    async def scenario():
        client = await connect(video.slug, hello=False)
        error = await client.send_batch(batch(1, sample(0)))
        await client.close()
        return error

    assert run(scenario)["code"] == "hello_required"
    assert FrameFeature.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hello?", "bad_json"),
        ('{"type": "subscribe"}', "unknown_type"),
        ('{"type": "hello", "backend": "quantum", "device_id": "device-0001"}', "bad_hello"),
    ],
)
def test_bad_text_messages_get_an_error(video, text, code):
    async def scenario():
        client = await connect(video.slug, hello=False)
        error = await client.send_text(text)
        await client.close()
        return error

    error = run(scenario)
    assert (error["code"], error["fatal"]) == (code, False)
    assert ClientSession.objects.get().backend == ""


def test_rate_limit(video, settings):
    settings.HYDRA_WS_RATE_PER_SECOND = 0.001
    settings.HYDRA_WS_RATE_BURST = 2

    async def scenario():
        client = await connect(video.slug)  # hello takes the first token
        ok = await client.send_batch(batch(1, sample(0)))
        limited = await client.send_batch(batch(2, sample(1000)))
        await client.close()
        return ok, limited

    ok, limited = run(scenario)
    assert ok["accepted"] == [0]
    assert (limited["code"], limited["fatal"]) == ("rate_limited", False)
    assert [ms for ms, _ in stored()] == [0]


def test_too_many_errors_close_the_connection(video, settings):
    settings.HYDRA_WS_MAX_ERRORS = 2

    async def scenario():
        client = await connect(video.slug)
        errors = [await client.send_batch(b"junk") for _ in range(3)]
        closing = await client.communicator.receive_output(timeout=5)
        await client.communicator.send_to(bytes_data=batch(9, sample(0)))  # arrives after the close
        silent = await client.communicator.receive_nothing(timeout=0.5)
        await client.close()
        return errors, closing, silent

    errors, closing, silent = run(scenario)
    assert [e["code"] for e in errors] == ["bad_header", "bad_header", "too_many_errors"]
    assert errors[-1]["fatal"] is True
    assert closing == {"type": "websocket.close", "code": CloseCode.TOO_MANY_ERRORS}
    assert silent is True
    assert FrameFeature.objects.count() == 0


def test_stored_features_ask_for_a_settlement_pass_once_committed(video, model_version, monkeypatch):
    requested = []

    def request_settlement(video_id, model_version_id):
        requested.append((video_id, model_version_id, FrameFeature.objects.filter(video_id=video_id).count()))

    monkeypatch.setattr(scheduling, "request_settlement", request_settlement)

    async def scenario():
        client = await connect(video.slug)
        await client.send_batch(batch(1, sample(0), sample(1000)))
        await client.send_batch(batch(2, sample(0)))  # only a duplicate: nothing new to settle
        await client.send_batch(batch(3, sample(1500)))  # refused
        await client.close()

    run(scenario)
    assert requested == [(video.pk, model_version.pk, 2)]
    assert set(FrameFeature.objects.values_list("status", flat=True)) == {FrameFeature.Status.PENDING}


def test_sample_times_follow_the_rendition_not_the_original(model_version):
    """A 50 fps upload played at 25 fps: samples are frames of the rendition, which is what is analysed."""
    video = make_ready_video(fps=50.0, duration_ms=3020, rendition_fps=25.0, rendition_duration_ms=2000)

    async def scenario():
        client = await connect(video.slug, hello=False)
        await client.close()
        return client.handshake

    handshake = run(scenario)
    assert (handshake["fps"], handshake["sample_ms"]) == (25.0, [0, 1000])


def test_every_refusal_reason_of_the_services_has_a_wire_code_and_a_close_code():
    assert set(REFUSAL_ERROR_CODES) == set(RefusalReason) == set(REFUSAL_CLOSE_CODES)
