"""What a real websocket client receives from daphne: the documented close codes, not 1011 (issue 13, items 2 and 4).

WebsocketCommunicator hands the consumer's close code over untouched, so it cannot see that
autobahn (inside daphne) refuses an IntEnum and closes with 1011 instead. These tests go
through a daphne process with the ``websockets`` client, as a browser would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
import websockets

from inference.models import ModelVersion
from inference.protocol import CloseCode
from tests.inference.streaming_factories import make_model, make_ready_video
from tests.live_site import running_daphne
from videos.models import Video

pytestmark = pytest.mark.slow

HELLO = json.dumps({"type": "hello", "backend": "wasm", "device_id": "device-0001"})


@pytest.fixture
def ws_base(transactional_db, media_root: Path, tmp_path: Path):
    with running_daphne(tmp_path / "daphne.log", HYDRA_MEDIA_ROOT=str(media_root)) as url:
        yield url.replace("http://", "ws://"), url


async def conversation(base: tuple[str, str], path: str, *texts: str, resume: str | None = None):
    """Connect, send ``texts`` after the handshake, and return (messages received, close code)."""
    ws_url, origin = base
    query = f"?resume={resume}" if resume else ""
    messages: list[dict] = []
    async with websockets.connect(ws_url + path + query, origin=origin, open_timeout=30) as connection:
        try:
            first = json.loads(await asyncio.wait_for(connection.recv(), 30))
            messages.append(first)
            for text in texts:
                await connection.send(text)
                messages.append(json.loads(await asyncio.wait_for(connection.recv(), 30)))
            await asyncio.wait_for(connection.wait_closed(), 5)
        except (websockets.ConnectionClosed, TimeoutError):
            pass
        code = connection.close_code
    return messages, code


def talk(base, path, *texts, resume=None):
    return asyncio.run(conversation(base, path, *texts, resume=resume))


def test_an_unknown_video_closes_with_4404_at_the_browser(ws_base):
    make_model()
    messages, code = talk(ws_base, "/ws/analysis/no-such-video/")
    assert messages[0]["code"] == "video_unavailable" and messages[0]["fatal"] is True
    assert code == CloseCode.VIDEO_UNAVAILABLE == 4404


def test_no_active_model_closes_with_4503(ws_base):
    video = make_ready_video()
    messages, code = talk(ws_base, f"/ws/analysis/{video.slug}/")
    assert messages[0]["code"] == "no_model"
    assert code == 4503


def test_a_forged_resume_closes_with_4409(ws_base):
    make_model()
    video = make_ready_video()
    messages, code = talk(ws_base, f"/ws/analysis/{video.slug}/", resume="00000000-0000-0000-0000-000000000000")
    assert messages[0]["code"] == "session_mismatch"
    assert code == 4409


def test_an_anonymous_session_resumed_from_another_device_closes_with_4409(ws_base):
    make_model()
    video = make_ready_video()
    messages, _ = talk(ws_base, f"/ws/analysis/{video.slug}/", HELLO)
    session = messages[0]["session"]
    assert messages[1]["type"] == "ready"

    other_device = json.dumps({"type": "hello", "backend": "wasm", "device_id": "someone-else-1"})
    messages, code = talk(ws_base, f"/ws/analysis/{video.slug}/", other_device, resume=session)
    assert messages[0]["type"] == "handshake" and messages[1]["code"] == "session_mismatch"
    assert code == 4409

    messages, code = talk(ws_base, f"/ws/analysis/{video.slug}/", HELLO, resume=session)
    assert messages[1]["type"] == "ready", "the browser that started it may resume it"


def test_deeply_nested_json_gets_a_protocol_error_and_the_connection_lives(ws_base):
    make_model()
    video = make_ready_video()
    messages, code = talk(ws_base, f"/ws/analysis/{video.slug}/", "[" * 4000, HELLO)
    assert messages[1]["type"] == "error" and messages[1]["code"] == "bad_json"
    assert "nested" in messages[1]["message"]
    assert messages[2]["type"] == "ready", "the same connection still works"
    assert code in (1000, None) or code < 4000


def test_a_video_removed_while_its_page_is_open_takes_no_more_features(ws_base):
    from inference import protocol
    from tests.inference.streaming_factories import FEATURES

    ModelVersion.objects.all().delete()
    make_model()
    video = make_ready_video()

    async def scenario():
        ws_url, origin = ws_base
        async with websockets.connect(f"{ws_url}/ws/analysis/{video.slug}/", origin=origin) as connection:
            handshake = json.loads(await connection.recv())
            await connection.send(HELLO)
            assert json.loads(await connection.recv())["type"] == "ready"
            await asyncio.to_thread(Video.objects.filter(pk=video.pk).update, visibility=Video.Visibility.REMOVED)
            sample = protocol.FrameSample(handshake["sample_ms"][0], 40.0, bytes([3]) * FEATURES)
            await connection.send(protocol.encode_feature_batch(1, [sample], FEATURES))
            refusal = json.loads(await connection.recv())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.wait_closed(), 5)
            return refusal, connection.close_code

    refusal, code = asyncio.run(scenario())
    assert refusal["code"] == "video_unavailable" and refusal["fatal"] is True
    assert code == 4404
    from inference.models import FrameFeature

    assert not FrameFeature.objects.filter(session__video=video).exists()
