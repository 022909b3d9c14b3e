"""Enforcement is immediate and complete: pages issue a removed video's media URLs to moderators only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from moderation import services
from tests.moderation.conftest import hold_for_review
from videos.media_urls import MediaFile, url_for_viewer

pytestmark = pytest.mark.django_db


@pytest.fixture
def removed_video(make_playable_video, make_verdict, moderator, reason):
    video = make_playable_video("Takedown")
    services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("graphic-violence")
    )
    video.refresh_from_db()
    return video


def _issued(user, video) -> list[str | None]:
    """The signed media URLs (rendition, poster) a page issues to ``user``; None where it issues none."""
    video.refresh_from_db()
    return [url_for_viewer(user or AnonymousUser(), video, media) for media in MediaFile]


def test_removed_media_is_gone_for_everyone_but_moderators(
    client, removed_video, viewer, uploader, staff, moderator, senior
):
    for user in (None, viewer, uploader, staff):
        assert _issued(user, removed_video) == [None, None], user
    for user in (moderator, senior):
        urls = _issued(user, removed_video)
        for url in urls:
            assert client.get(url).status_code == 200, (user, url)
        assert client.get(urls[0], HTTP_RANGE="bytes=0-99").status_code == 206


def test_removed_player_page_says_removed_and_why(client, removed_video):
    response = client.get(reverse("videos:player", args=[removed_video.slug]))
    assert response.status_code in (404, 410)
    page = response.content.decode()
    assert "removed" in page.lower() and "Graphic violence" in page
    assert str(removed_video.media_key) not in page, "no media URL on the page"


def test_removed_video_disappears_from_listings(client, removed_video, make_playable_video):
    kept = make_playable_video("Still here")
    page = client.get(reverse("videos:home")).content.decode()
    assert "Still here" in page and "Takedown" not in page
    assert kept.visibility == "published"


def test_restricted_media_needs_an_account(client, make_playable_video, make_verdict, moderator, viewer, reason):
    video = make_playable_video("Age gated")
    services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "restrict", reason("sensitive-age-gate")
    )
    assert _issued(None, video) == [None, None]
    stream, _ = _issued(viewer, video)
    assert client.get(stream).status_code == 200


def test_reversal_restores_the_media(client, removed_video, senior, reason):
    decision = removed_video.moderation_cases.get().decisions.get()
    services.reverse_decision(decision, senior, reason("no-violation"))
    stream, _ = _issued(None, removed_video)
    assert client.get(stream).status_code == 200


def test_held_video_is_not_public_until_cleared(client, make_playable_video, uploader):
    video = hold_for_review(make_playable_video("Fresh upload"))
    assert _issued(None, video) == [None, None]
    stream, _ = _issued(uploader, video)
    assert client.get(stream).status_code == 200  # the uploader sees their held video
    services.clear_held_video(video)
    stream, _ = _issued(None, video)
    assert client.get(stream).status_code == 200


def test_urls_issued_before_a_video_becomes_less_visible_stop_at_once_and_only_then(
    client,
    make_playable_video,
    make_verdict,
    moderator,
    senior,
    uploader,
    viewer,
    reason,
    django_capture_on_commit_callbacks,
):
    """Restricting or removing revokes every media URL issued so far (videos.services.revoke_media_urls); lifting
    a decision or clearing a held video does not, so viewers who may watch keep their URLs."""
    video = make_playable_video("Revoked on restriction")
    copied, _ = _issued(uploader, video)

    with django_capture_on_commit_callbacks(execute=True):
        decision = services.decide_case(
            services.open_case_for_verdict(make_verdict(video)), moderator, "restrict", reason("sensitive-age-gate")
        )
    assert client.get(copied).status_code == 404
    restricted, _ = _issued(viewer, video)
    assert client.get(restricted).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        services.reverse_decision(decision, senior, reason("no-violation"))
    assert client.get(restricted).status_code == 200  # published again: nothing to revoke

    with django_capture_on_commit_callbacks(execute=True):
        report = services.report_video(video, viewer, "violence")
        services.decide_case(report.case, moderator, "remove", reason("graphic-violence"))
    assert client.get(restricted).status_code == 404
    assert _issued(uploader, video) == [None, None]
    stream, _ = _issued(moderator, video)
    assert client.get(stream).status_code == 200


def test_clearing_a_held_video_keeps_the_urls_its_uploader_has(
    client, make_playable_video, uploader, django_capture_on_commit_callbacks
):
    video = hold_for_review(make_playable_video("Fresh upload"))
    stream, _ = _issued(uploader, video)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.clear_held_video(video)
    assert client.get(stream).status_code == 200
