"""Enforcement is immediate and complete: a removed video's files are served to moderators only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from moderation import services
from tests.moderation.conftest import hold_for_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def removed_video(make_playable_video, make_verdict, moderator, reason):
    video = make_playable_video("Takedown")
    services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("graphic-violence")
    )
    video.refresh_from_db()
    return video


def _media(video) -> list[str]:
    return [reverse("videos:stream", args=[video.slug]), reverse("videos:poster", args=[video.slug])]


def test_removed_media_is_gone_for_everyone_but_moderators(
    client, removed_video, viewer, uploader, staff, moderator, senior
):
    for user in (None, viewer, uploader, staff):
        client.logout()
        if user is not None:
            client.force_login(user)
        for url in _media(removed_video):
            assert client.get(url).status_code in (403, 404), (user, url)
            assert client.get(url, HTTP_RANGE="bytes=0-99").status_code in (403, 404), (user, url)
    for user in (moderator, senior):
        client.force_login(user)
        for url in _media(removed_video):
            assert client.get(url).status_code == 200, (user, url)
        assert client.get(_media(removed_video)[0], HTTP_RANGE="bytes=0-99").status_code == 206


def test_removed_player_page_says_removed_and_why(client, removed_video):
    response = client.get(reverse("videos:player", args=[removed_video.slug]))
    assert response.status_code in (404, 410)
    page = response.content.decode()
    assert "removed" in page.lower() and "Graphic violence" in page
    assert reverse("videos:stream", args=[removed_video.slug]) not in page


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
    stream = reverse("videos:stream", args=[video.slug])
    assert client.get(stream).status_code in (403, 404)
    client.force_login(viewer)
    assert client.get(stream).status_code == 200


def test_reversal_restores_the_media(client, removed_video, senior, reason):
    decision = removed_video.moderation_cases.get().decisions.get()
    services.reverse_decision(decision, senior, reason("no-violation"))
    assert client.get(_media(removed_video)[0]).status_code == 200


def test_held_video_is_not_public_until_cleared(client, make_playable_video, uploader):
    video = hold_for_review(make_playable_video("Fresh upload"))
    stream = reverse("videos:stream", args=[video.slug])
    assert client.get(stream).status_code in (403, 404)
    client.force_login(uploader)
    assert client.get(stream).status_code == 200  # the uploader sees their held video
    client.logout()
    services.clear_held_video(video)
    assert client.get(stream).status_code == 200
