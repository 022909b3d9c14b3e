"""The ingest writer inside a real daphne process: many sockets' batches stored together, each acked as alone.

WebsocketCommunicator runs the consumer in the test's own event loop; here the batches of
several ``websockets`` clients meet in one daphne process's writer, as browsers' batches do.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from django.conf import settings

from inference import protocol
from inference.models import FrameFeature
from inference.protocol import FrameSample
from tests.inference.streaming_factories import FEATURES, make_model, make_ready_video
from tests.live_site import running_daphne
from videos.models import Video

pytestmark = pytest.mark.slow


@pytest.fixture
def ws_base(transactional_db, media_root: Path, tmp_path: Path):
    with running_daphne(tmp_path / "daphne.log", HYDRA_MEDIA_ROOT=str(media_root)) as url:
        yield url.replace("http://", "ws://"), url


async def viewer(
    base: tuple[str, str], slug: str, index: int, *, ready: asyncio.Event | None = None, go: asyncio.Event | None = None
):
    """Handshake, hello (then ``ready`` is set and ``go`` awaited), every assigned sample in full batches.

    Returns (answers, close code).
    """
    ws_url, origin = base
    answers = []
    async with websockets.connect(
        f"{ws_url}/ws/analysis/{slug}/",
        origin=origin,
        additional_headers={"X-Forwarded-For": f"10.{index}.0.1"},
        open_timeout=30,
    ) as connection:
        handshake = json.loads(await asyncio.wait_for(connection.recv(), 30))
        await connection.send(json.dumps({"type": "hello", "backend": "wasm", "device_id": f"ingest-device-{index}"}))
        assert json.loads(await asyncio.wait_for(connection.recv(), 30))["type"] == "ready"
        if ready is not None and go is not None:
            ready.set()
            await go.wait()
        times, size = handshake["sample_ms"], handshake["limits"]["max_batch"]
        for seq, start in enumerate(range(0, len(times), size)):
            samples = [FrameSample(ms, 30.0, bytes([index]) * FEATURES) for ms in times[start : start + size]]
            await connection.send(protocol.encode_feature_batch(seq, samples, FEATURES))
            try:
                answers.append(json.loads(await asyncio.wait_for(connection.recv(), 30)))
            except websockets.ConnectionClosed:
                break
            if answers[-1].get("fatal"):
                await asyncio.wait_for(connection.wait_closed(), 10)
                break
        code = connection.close_code
    return answers, code


def test_sockets_batches_are_acked_and_stored_through_daphne(ws_base):
    make_model()
    videos = [make_ready_video(f"long {n}", duration_ms=100_000) for n in range(3)]  # 100 samples: two batches each

    async def scenario():
        return await asyncio.gather(*(viewer(ws_base, v.slug, index) for index, v in enumerate(videos)))

    results = asyncio.run(scenario())
    assert settings.HYDRA_WS_MAX_BATCH == 64  # a full batch is 82,444 bytes: through daphne and its websocket layer
    for answers, _ in results:
        assert [(a["type"], a["seq"], len(a["accepted"]), a["duplicates"]) for a in answers] == [
            ("ack", 0, 64, []),
            ("ack", 1, 36, []),
        ]
    for index, video in enumerate(videos):
        rows = FrameFeature.objects.filter(video=video)
        assert rows.count() == 100
        assert {bytes(v)[:1] for v in rows.values_list("vector", flat=True)} == {bytes([index])}


def test_a_video_removed_mid_session_ends_its_socket_and_not_the_others(ws_base):
    make_model()
    kept, removed = make_ready_video("kept", duration_ms=10_000), make_ready_video("removed", duration_ms=10_000)

    async def scenario():
        ready, go = [asyncio.Event(), asyncio.Event()], asyncio.Event()
        sockets = [
            asyncio.ensure_future(viewer(ws_base, kept.slug, 1, ready=ready[0], go=go)),
            asyncio.ensure_future(viewer(ws_base, removed.slug, 2, ready=ready[1], go=go)),
        ]
        await asyncio.gather(*(event.wait() for event in ready))
        await asyncio.get_running_loop().run_in_executor(None, remove, removed.pk)
        go.set()
        return await asyncio.gather(*sockets)

    def remove(pk: int) -> None:
        Video.objects.filter(pk=pk).update(visibility=Video.Visibility.REMOVED)
        from django.db import connection

        connection.close()

    (kept_answers, _), (removed_answers, removed_code) = asyncio.run(scenario())
    assert [(a["type"], len(a["accepted"])) for a in kept_answers] == [("ack", 10)]
    assert [(a["type"], a["code"], a["fatal"]) for a in removed_answers] == [("error", "video_unavailable", True)]
    assert removed_code == 4404
    assert FrameFeature.objects.filter(video=removed).count() == 0
    assert FrameFeature.objects.filter(video=kept).count() == 10
