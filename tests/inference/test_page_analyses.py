"""Which player pages carry the analysis: pages with work, and a drawn share of a covered video's pages (audits).

An extra viewer of a covered video must cost the server nothing beyond the page: no script, no model,
no socket. An audit page must look exactly like a work page, so a viewer cannot tell them apart.
"""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inference import selectors
from inference.models import ClientSession, FrameFeature
from tests.inference.streaming_factories import make_model, make_ready_video, vector

pytestmark = pytest.mark.django_db
ANALYSIS_MARKUP = re.compile(r'<aside id="hydra-analysis".*?</script>', re.S)


@pytest.fixture(autouse=True)
def one_sample_a_second(settings):
    settings.HYDRA_SAMPLE_INTERVAL_MS = 1000


def accept(video, model_version, times, *, is_server=True):
    session = ClientSession.objects.create(video=video, model_version=model_version, is_server=is_server)
    FrameFeature.objects.bulk_create(
        FrameFeature(
            video=video,
            model_version=model_version,
            session=session,
            sample_ms=ms,
            vector=vector(1),
            status=FrameFeature.Status.ACCEPTED,
        )
        for ms in times
    )


def analysis_markup(client, video) -> str | None:
    response = client.get(f"/v/{video.slug}/")
    assert response.status_code == 200
    found = ANALYSIS_MARKUP.search(response.content.decode())
    return found.group(0).replace(video.slug, "SLUG") if found else None


def test_a_video_with_work_gets_the_analysis_and_a_covered_one_does_not(client, settings):
    settings.HYDRA_TRUST_AUDIT_RATE = 0.0
    model_version = make_model()
    video = make_ready_video()
    times = selectors.expected_sample_times(video)
    accept(video, model_version, times[:-1])
    assert analysis_markup(client, video) is not None, "one sample still lacks accepted features"

    accept(video, model_version, times[-1:])
    assert analysis_markup(client, video) is None
    assert "js/build/analysis.js" not in client.get(f"/v/{video.slug}/").content.decode()


def test_pending_features_are_still_work(client, settings):
    """Samples sent by one viewer and waiting for a replica are not covered: the next viewer is needed."""
    settings.HYDRA_TRUST_AUDIT_RATE = 0.0
    model_version = make_model()
    video = make_ready_video()
    times = selectors.expected_sample_times(video)
    accept(video, model_version, times[:-1])
    viewer = ClientSession.objects.create(video=video, model_version=model_version)
    FrameFeature.objects.create(
        video=video, model_version=model_version, session=viewer, sample_ms=times[-1], vector=vector(2)
    )
    assert analysis_markup(client, video) is not None


def test_an_audit_page_cannot_be_told_from_a_work_page(client, settings):
    """The attack: a colluder compares the page it got with a page that has work. The markup is identical."""
    settings.HYDRA_TRUST_AUDIT_RATE = 1.0
    model_version = make_model()
    with_work = make_ready_video("with work")
    covered = make_ready_video("covered")
    accept(covered, model_version, selectors.expected_sample_times(covered))
    assert selectors.fully_covered(covered, model_version)
    work_page = analysis_markup(client, with_work)
    audit_page = analysis_markup(client, covered)
    assert work_page is not None
    assert audit_page == work_page


def test_audits_are_drawn_at_the_configured_rate(settings):
    settings.HYDRA_TRUST_AUDIT_RATE = 0.25
    model_version = make_model()
    video = make_ready_video()
    accept(video, model_version, selectors.expected_sample_times(video))
    drawn = sum(selectors.page_analyses(video) for _ in range(2000))
    assert 400 < drawn < 600  # binomial(2000, 0.25): mean 500, sd 19


def test_a_covered_video_is_remembered_and_asks_the_database_nothing_about_features(settings):
    settings.HYDRA_TRUST_AUDIT_RATE = 0.0
    model_version = make_model()
    video = make_ready_video()
    accept(video, model_version, selectors.expected_sample_times(video))
    assert selectors.page_analyses(video) is False
    with CaptureQueriesContext(connection) as queries:
        assert selectors.page_analyses(video) is False
    assert queries.captured_queries == []


def test_a_new_model_version_makes_every_video_work_again(client, settings):
    settings.HYDRA_TRUST_AUDIT_RATE = 0.0
    old = make_model("a")
    video = make_ready_video()
    accept(video, old, selectors.expected_sample_times(video))
    assert analysis_markup(client, video) is None
    old.is_active = False
    old.save(update_fields=["is_active"])
    make_model("b")
    caches["process"].clear()  # ACTIVE_VERSION_MEMO_SECONDS later
    assert analysis_markup(client, video) is not None


def test_without_an_active_model_no_page_analyses(client):
    make_model(active=False)
    assert analysis_markup(client, make_ready_video()) is None


def test_the_page_tells_its_seeker_the_byte_budget_and_the_media_byte_rate(client, settings, tmp_path):
    settings.HYDRA_TRUST_AUDIT_RATE = 0.0
    settings.HYDRA_SEEKER_BYTES_PER_VISIT = 123_456
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "renditions").mkdir()
    (tmp_path / "renditions" / "clip.mp4").write_bytes(b"x" * 50_000)
    make_model()
    video = make_ready_video(rendition_duration_ms=2000)
    markup = analysis_markup(client, video)
    assert 'data-seeker-bytes-per-visit="123456"' in markup
    assert 'data-media-bytes-per-second="25000"' in markup

    (tmp_path / "renditions" / "clip.mp4").unlink()  # unknown rate: the page counts finished downloads only
    assert 'data-media-bytes-per-second=""' in analysis_markup(client, video)
