"""Who sees what: the player page, the rendition and the poster for every visibility and viewer."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.urls import reverse

from videos.media_urls import MediaFile, url_for_viewer
from videos.models import Video
from videos.selectors import can_view, published_videos

ANON, OWNER, OTHER, MODERATOR = "anonymous", "owner", "other user", "moderator"

# What each viewer gets, per visibility: (player page status, media URLs issued to them?)
EXPECTED = {
    Video.Visibility.PUBLISHED: {ANON: (200, True), OWNER: (200, True), OTHER: (200, True), MODERATOR: (200, True)},
    Video.Visibility.RESTRICTED: {ANON: (403, False), OWNER: (200, True), OTHER: (200, True), MODERATOR: (200, True)},
    Video.Visibility.HELD: {ANON: (404, False), OWNER: (200, True), OTHER: (404, False), MODERATOR: (200, True)},
    Video.Visibility.REMOVED: {ANON: (410, False), OWNER: (410, False), OTHER: (410, False), MODERATOR: (200, True)},
}


@pytest.fixture
def viewers(owner, stranger, moderator):
    return {ANON: None, OWNER: owner, OTHER: stranger, MODERATOR: moderator}


@pytest.mark.parametrize("visibility", list(EXPECTED))
def test_player_stream_and_poster_follow_can_view(visibility, ready_video, owner, viewers, client_for):
    video = ready_video(owner, visibility=visibility)
    for viewer, (page_status, media_served) in EXPECTED[visibility].items():
        user = viewers[viewer]
        client = client_for(user)
        assert can_view(user or AnonymousUser(), video) is media_served, viewer
        page = client.get(reverse("videos:player", args=[video.slug]))
        assert page.status_code == page_status, viewer
        if page_status != 404:
            assert page["Cross-Origin-Opener-Policy"] == "same-origin"
            assert page["Cross-Origin-Embedder-Policy"] == "require-corp"
        issued = [url_for_viewer(user or AnonymousUser(), video, media) for media in MediaFile]
        assert all(issued) if media_served else not any(issued), viewer
        for url in filter(None, issued):
            assert client.get(url, headers={"range": "bytes=0-9"}).status_code == 206, (viewer, url)
        if page_status == 200:
            assert f'src="{issued[0]}"' in page.content.decode().replace("&amp;", "&")
        assert f"/media/renditions/{video.media_key}" not in page.content.decode() or media_served


def test_removed_notice_says_why_and_serves_nothing(ready_video, owner, client):
    video = ready_video(owner, visibility=Video.Visibility.REMOVED)
    Video.objects.filter(pk=video.pk).update(visibility_reason="Graphic violence (policy 4.2).")
    page = client.get(reverse("videos:player", args=[video.slug]))
    text = page.content.decode()
    assert "This video was removed" in text and "Graphic violence (policy 4.2)." in text
    assert str(video.media_key) not in text


def test_a_video_still_processing_is_only_shown_to_its_owner(owner, stranger, client_for, media_root):
    video = Video.objects.create(owner=owner, title="Raw", status=Video.Status.PROCESSING)
    url = reverse("videos:player", args=[video.slug])
    assert client_for(stranger).get(url).status_code == 404
    page = client_for(owner).get(url)
    assert page.status_code == 200 and "being processed" in page.content.decode()
    assert url_for_viewer(owner, video, MediaFile.RENDITION) is None


def test_home_lists_only_published_ready_videos(ready_video, owner, client):
    shown = ready_video(owner, title="Shown")
    hidden = [ready_video(owner, title=v, visibility=v) for v in ("held", "restricted", "removed")]
    Video.objects.create(owner=owner, title="Unfinished", status=Video.Status.PROCESSING)
    assert list(published_videos()) == [shown]
    page = client.get(reverse("videos:home")).content.decode()
    assert "Shown" in page and f"/media/posters/{shown.media_key}.jpg?token=" in page
    assert not any(reverse("videos:player", args=[video.slug]) in page for video in hidden)


def test_moderation_permission_also_makes_a_moderator(db, owner, ready_video):
    video = ready_video(owner, visibility=Video.Visibility.HELD)
    staff = User.objects.create_user("staff", is_staff=True)
    assert not can_view(staff, video)
    superuser = User.objects.create_superuser("root", password="x")
    assert can_view(superuser, video)


def test_unknown_slug_is_404_everywhere(client, db):
    assert client.get(reverse("videos:player", args=["nope"])).status_code == 404


def test_the_uploaders_audience_decides_who_finds_and_who_watches(client_for, owner, stranger, ready_video):
    """Private: the owner only (404 to others, media included); unlisted: anyone with the link, never listed."""
    private = ready_video(owner, title="Private diary")
    unlisted = ready_video(owner, title="Unlisted draft")
    Video.objects.filter(pk=private.pk).update(audience=Video.Audience.PRIVATE)
    Video.objects.filter(pk=unlisted.pk).update(audience=Video.Audience.UNLISTED)
    private.refresh_from_db()
    for user in (AnonymousUser(), stranger):
        client = client_for(user if user.is_authenticated else None)
        assert client.get(reverse("videos:player", args=[private.slug])).status_code == 404
        assert url_for_viewer(user, private, MediaFile.RENDITION) is None
        assert client.get(reverse("videos:player", args=[unlisted.slug])).status_code == 200
        for query in ({}, {"q": "Private"}, {"q": "Unlisted"}):
            home = client.get(reverse("videos:home"), query).content.decode()
            assert "Private diary" not in home and "Unlisted draft" not in home
    assert client_for(owner).get(reverse("videos:player", args=[private.slug])).status_code == 200


def test_the_upload_form_stores_the_chosen_audience(client_for, owner, make_video):
    path = make_video("clip.mp4", seconds=1, fps=12, width=160, height=120)
    with path.open("rb") as handle:
        response = client_for(owner).post(
            reverse("videos:upload"), {"title": "Only me", "audience": "private", "file": handle}
        )
    assert response.status_code == 302
    assert Video.objects.get(title="Only me").audience == Video.Audience.PRIVATE
    with path.open("rb") as handle:
        response = client_for(owner).post(
            reverse("videos:upload"), {"title": "Odd", "audience": "everyone", "file": handle}
        )
    assert response.status_code == 400 and not Video.objects.filter(title="Odd").exists()
