"""inference.ingest: batches of many connections stored together, each answered only once committed."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from hydra_site import ratelimit
from inference import ingest, scheduling
from inference.errors import AnalysisRefused, RefusalReason
from inference.models import ClientSession, FrameFeature
from inference.protocol import FrameSample
from inference.services import streaming
from tests.inference.streaming_factories import make_model, make_ready_video, vector
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def settlements(monkeypatch) -> list[tuple[int, int, int]]:
    """Settlement passes asked for: (video, model version, rows of the video committed when asked)."""
    requested = []

    def request_settlement(video_id, model_version_id):
        requested.append((video_id, model_version_id, FrameFeature.objects.filter(video_id=video_id).count()))

    monkeypatch.setattr(scheduling, "request_settlement", request_settlement)
    return requested


@pytest.fixture
def video(settings, settlements) -> Video:
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000
    make_model()
    ratelimit.reset_all()
    return make_ready_video()


def open_session(video: Video, ip: str | None = None) -> ClientSession:
    from inference.selectors import active_model_version

    return streaming.start_client_session(
        video=video, model_version=active_model_version(), ip_address=ip or f"10.{uuid.uuid4().int % 250}.0.1"
    )


def viewer_batch(session: ClientSession, *times: int, fill: int = 1) -> streaming.ViewerBatch:
    return streaming.ViewerBatch(session, AnonymousUser(), [FrameSample(ms, 20.0, vector(fill)) for ms in times])


def stored() -> list[tuple]:
    return sorted(FrameFeature.objects.values_list("session_id", "sample_ms"))


class CountedStore:
    """The real store, counting its calls and how many batches each took."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, batches):
        self.calls.append(len(batches))
        return streaming.record_viewer_batches(batches, announce=False)


def test_two_connections_batches_are_written_in_one_flush(video, settlements):
    first, second = open_session(video), open_session(video)
    store = CountedStore()

    async def scenario():
        writer = ingest.IngestWriter(store)
        return await asyncio.gather(
            writer.submit(viewer_batch(first, 0, 1000)), writer.submit(viewer_batch(second, 0, 2000))
        )

    answers = asyncio.run(scenario())
    assert store.calls == [2]
    assert [(a.accepted, a.duplicates) for a in answers] == [((0, 1000), ()), ((0, 2000), ())]
    assert stored() == sorted([(first.pk, 0), (first.pk, 1000), (second.pk, 0), (second.pk, 2000)])
    assert settlements == [(video.pk, first.model_version_id, 4)]  # one pass asked for, once all was committed


def test_many_batches_are_stored_by_one_statement(video, settlements):
    sessions = [open_session(video) for _ in range(5)]
    with CaptureQueriesContext(connection) as queries:
        outcomes = streaming.record_viewer_batches([viewer_batch(s, 0, 1000) for s in sessions])
    assert [o.accepted for o in outcomes] == [(0, 1000)] * 5
    # One read of the videos for the visibility re-check, one statement for every row; limits are in Redis.
    # (The settlement stand-in above counts the rows it was asked about: its one query is added.)
    assert len(settlements) == 1
    assert len(queries.captured_queries) == 2 + 1
    assert FrameFeature.objects.count() == 10


def test_the_answer_waits_for_the_commit(video):
    session = open_session(video)
    storing, release = threading.Event(), threading.Event()

    def slow_store(batches):
        storing.set()
        release.wait(10)
        return streaming.record_viewer_batches(batches, announce=False)

    async def scenario():
        writer = ingest.IngestWriter(slow_store)
        answer = asyncio.ensure_future(writer.submit(viewer_batch(session, 0)))
        await asyncio.get_running_loop().run_in_executor(None, storing.wait, 10)
        await asyncio.sleep(0.05)
        waiting = not answer.done()
        release.set()
        recorded = await answer
        # Read on another connection than the writer's: what it sees was committed.
        visible = await database_sync_to_async(FrameFeature.objects.count)()
        return waiting, recorded, visible

    waiting, recorded, visible = asyncio.run(scenario())
    assert waiting
    assert recorded.accepted == (0,)
    assert visible == 1


def test_a_failed_flush_answers_nobody_as_stored_and_stores_nothing(video):
    first, second = open_session(video), open_session(video)

    def broken_database(batches):
        raise OperationalError("server closed the connection unexpectedly")

    async def scenario():
        writer = ingest.IngestWriter(broken_database)
        return await asyncio.gather(
            writer.submit(viewer_batch(first, 0)), writer.submit(viewer_batch(second, 0)), return_exceptions=True
        )

    answers = asyncio.run(scenario())
    assert [type(a) for a in answers] == [OperationalError, OperationalError]
    assert stored() == []


def test_a_batch_that_breaks_the_statement_stores_nothing_and_the_others_are_stored_alone(video):
    honest, broken = open_session(video), open_session(video)

    async def scenario():
        writer = ingest.IngestWriter()
        # 2**31 ms is past PostgreSQL's integer: the whole statement fails, then each batch is tried alone.
        return await asyncio.gather(
            writer.submit(viewer_batch(honest, 0, 1000)),
            writer.submit(viewer_batch(broken, 2000, 2**31)),
            return_exceptions=True,
        )

    honest_answer, broken_answer = asyncio.run(scenario())
    assert honest_answer.accepted == (0, 1000)
    assert "out of range" in str(broken_answer)
    assert stored() == sorted([(honest.pk, 0), (honest.pk, 1000)])  # nothing of the broken batch, not even 2000


def test_closing_the_writer_flushes_what_waits(video):
    sessions = [open_session(video) for _ in range(3)]

    async def scenario():
        writer = ingest.IngestWriter(max_rows=2)  # three flushes
        answers = [asyncio.ensure_future(writer.submit(viewer_batch(s, 0, 1000))) for s in sessions]
        await asyncio.sleep(0)
        await writer.close()
        done = [answer.done() for answer in answers]
        with pytest.raises(ingest.WriterClosed):
            await writer.submit(viewer_batch(sessions[0], 2000))
        return done, await asyncio.gather(*answers)

    done, answers = asyncio.run(scenario())
    assert done == [True, True, True]
    assert [a.accepted for a in answers] == [(0, 1000)] * 3
    assert FrameFeature.objects.count() == 6


def test_a_connection_gone_before_its_flush_stores_nothing(video):
    gone, staying = open_session(video), open_session(video)

    async def scenario():
        writer = ingest.IngestWriter()
        abandoned = asyncio.ensure_future(writer.submit(viewer_batch(gone, 0)))
        kept = asyncio.ensure_future(writer.submit(viewer_batch(staying, 0)))
        await asyncio.sleep(0)  # both wait; the flush has not taken them yet
        abandoned.cancel()
        return await kept

    assert asyncio.run(scenario()).accepted == (0,)
    assert stored() == [(staying.pk, 0)]


def test_each_batch_of_a_flush_is_refused_as_it_would_be_alone(video, settings):
    """Message limits, the visibility re-check and quarantine apply batch by batch inside one flush."""
    settings.HYDRA_RATE_LIMITS = {**settings.HYDRA_RATE_LIMITS, "ws_message_ip": (1, 60)}
    hidden = make_ready_video("hidden")
    first_of_ip, second_of_ip = open_session(video, ip="192.0.2.1"), open_session(video, ip="192.0.2.1")
    on_hidden, caught, honest = open_session(hidden), open_session(video), open_session(video)
    Video.objects.filter(pk=hidden.pk).update(visibility=Video.Visibility.REMOVED)
    ClientSession.objects.filter(pk=caught.pk).update(state=ClientSession.State.QUARANTINED)

    outcomes = streaming.record_viewer_batches(
        [viewer_batch(s, 0) for s in (first_of_ip, second_of_ip, on_hidden, caught, honest)]
    )

    assert outcomes[0].accepted == (0,)
    refused = {index: outcomes[index] for index in (1, 2, 3)}
    assert all(isinstance(refusal, AnalysisRefused) for refusal in refused.values())
    assert [refused[index].reason for index in (1, 2, 3)] == [
        RefusalReason.RATE_LIMITED,
        RefusalReason.VIDEO_UNAVAILABLE,
        RefusalReason.QUARANTINED,
    ]
    assert "ws_message_ip" in refused[1].message
    assert outcomes[4].accepted == (0,)
    assert stored() == sorted([(first_of_ip.pk, 0), (honest.pk, 0)])


def test_two_connections_of_one_session_in_a_flush_keep_the_first_copy(video):
    """Two tabs resuming one session: the first batch's copy is kept and acked, the second's is a duplicate."""
    session = open_session(video)
    again = ClientSession.objects.get(pk=session.pk)

    outcomes = streaming.record_viewer_batches([viewer_batch(session, 0, fill=1), viewer_batch(again, 0, 1000, fill=2)])

    assert [(o.accepted, o.duplicates) for o in outcomes] == [((0,), ()), ((1000,), (0,))]
    assert bytes(FrameFeature.objects.get(session=session, sample_ms=0).vector) == vector(1)


def test_the_limits_of_a_whole_flush_apply_in_order_as_one_by_one(video, settings):
    """check_clients: one round trip, the same answers as check_client called message after message; a
    message refused for its address takes nothing from its account's bucket."""
    settings.HYDRA_RATE_LIMITS = {
        **settings.HYDRA_RATE_LIMITS,
        "ws_message_ip": (1, 60),
        "ws_message_account": (2, 60),
    }
    user = 7_000_001
    refusals = ratelimit.check_clients(
        "ws_message",
        [("198.51.100.1", user), ("198.51.100.1", user), ("198.51.100.2", user), ("198.51.100.3", user)],
    )
    assert [refusal.limit.name if refusal else None for refusal in refusals] == [
        None,
        "ws_message_ip",  # its address is spent: the account keeps its second token
        None,
        "ws_message_account",
    ]
    assert all(refusal.retry_after > 0 for refusal in refusals if refusal)
