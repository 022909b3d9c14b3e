"""A moderator's day in headless Chromium: queue, case, jump to a flagged segment, remove; the public sees it gone."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from inference.selectors import expected_sample_times
from moderation import services
from moderation.models import PolicyReason
from tests.browser import NO_WEBSOCKETS_ON_LIVE_SERVER, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console_allowed() -> list[str]:
    return [
        NO_WEBSOCKETS_ON_LIVE_SERVER,
        r"status of 410 \(Gone\)",  # the removed video's page, which this test opens on purpose
    ]


@pytest.fixture
def flagged_queue(make_playable_video, make_ready_video, make_verdict, reason, settings):
    """One flagged playable video (the case under test, sampled every 500 ms) among a realistic handful of others."""
    settings.HYDRA_SAMPLE_INTERVAL_MS = 500
    moderator = User.objects.create_user("maria", password="maria-pw-123", is_staff=True)
    moderator.groups.add(Group.objects.get(name="Moderators"))
    reporters = [User.objects.create_user(f"viewer{i}") for i in range(3)]

    video = make_playable_video("Night market walk", seconds=10)
    samples = expected_sample_times(video)  # frame times, so 4480 rather than 4500 at 25 fps
    make_verdict(
        video,
        "violence",
        score=0.34,
        severity=4,
        threshold=0.5,
        scores={ms: 0.34 if ms == 7000 else 0.04 + ms / 200_000 for ms in samples},
    )
    nudity = make_verdict(
        video,
        "nudity",
        score=0.93,
        severity=5,
        threshold=0.6,
        scores={ms: (0.93 - abs(ms - 4500) / 6000 if 3000 <= ms <= 6000 else 0.08) for ms in samples},
        coverage=0.85,
    )
    case = services.open_case_for_verdict(nudity)
    services.report_video(video, reporters[0], "sexual", "Explicit scene around 0:04, kids watch this channel")

    for i, (title, category, severity, score) in enumerate(
        [
            ("Boxing highlights", "violence", 4, 0.71),
            ("Beach volleyball", "nudity", 5, 0.64),
            ("Cooking with fire", "violence", 4, 0.55),
        ]
    ):
        other = make_ready_video(title, view_count=100 * i)
        services.open_case_for_verdict(make_verdict(other, category, score=score, severity=severity))
    spam = make_ready_video("Win a free phone!!!")
    for reporter in reporters:
        services.report_video(spam, reporter, "spam", "scam link in description")
    appealed = make_ready_video("Protest footage")
    senior = User.objects.create_user("sam", is_staff=True)
    senior.groups.add(Group.objects.get(name="Senior moderators"))
    removal = services.decide_case(
        services.report_video(appealed, reporters[1], "violence").case, senior, "remove", reason("graphic-violence")
    )
    services.appeal_decision(removal, appealed.owner, "This is news reporting, not glorification.")
    return case, PolicyReason.objects.get(code="sexual-content").pk


def test_moderator_removes_a_flagged_video_and_the_public_sees_it_gone(live_server, flagged_queue, chromium):
    """Every database access happens in the fixtures above: Playwright's sync API runs an event loop."""
    case, suggested_reason = flagged_queue
    video = case.video
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    mod = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = mod.new_page()
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", "maria")
    page.fill("#id_password", "maria-pw-123")
    page.click("input[type=submit]")
    page.goto(live_server.url + reverse("admin:moderation_case_changelist"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 6
    assert "Night market walk" in rows.first.inner_text()  # severity 5 * 0.93 + a report: top of the queue
    page.screenshot(path=str(SCREENSHOTS / "moderation-queue.png"), full_page=True)

    page.click("text=Night market walk")
    page.wait_for_selector("#mq-player")
    page.wait_for_function("document.getElementById('mq-player').readyState >= 1")
    stream = page.evaluate("document.getElementById('mq-player').src")  # the signed URL the case page issued
    case_url = page.url
    page.wait_for_function("[...document.querySelectorAll('.mq-frame img')].every(i => i.complete && i.naturalWidth)")
    assert page.evaluate("document.getElementById('mq-player').currentTime") == 0
    page.locator(".mq-seg").first.click()
    page.wait_for_function("document.getElementById('mq-player').currentTime > 2.9")
    assert page.evaluate("document.getElementById('mq-player').currentTime") == pytest.approx(3.02, abs=0.05)
    page.wait_for_function("(p => !p.seeking && p.readyState >= 3)(document.getElementById('mq-player'))")
    page.screenshot(path=str(SCREENSHOTS / "moderation-case.png"), full_page=True, animations="disabled")

    assert page.locator("select[name=policy_reason]").first.input_value() == str(suggested_reason)
    page.fill("textarea[name=note]", "Explicit at 0:03-0:06")
    page.click("button[value=remove]")
    page.wait_for_selector(".messagelist .success")
    assert "remove under “Sexual content”" in page.locator(".messagelist").inner_text()

    assert mod.request.get(stream).status == 404  # every URL issued before the removal is revoked at once
    page.goto(case_url)
    page.wait_for_selector("#mq-player")
    fresh = page.evaluate("document.getElementById('mq-player').src")
    assert fresh != stream and mod.request.get(fresh).status == 200  # moderators still see the evidence
    media_key = PurePosixPath(urlsplit(fresh).path).stem  # renamed by the removal

    public = chromium.new_context(viewport={"width": 1280, "height": 800})
    viewer = public.new_page()
    response = viewer.goto(live_server.url + reverse("videos:player", args=[video.slug]))
    assert response.status in (404, 410)
    text = viewer.locator("body").inner_text()
    assert "removed" in text.lower() and "Sexual content" in text
    viewer.screenshot(path=str(SCREENSHOTS / "moderation-removed-public.png"), full_page=True)
    assert media_key not in viewer.content(), "the removed page issues no media URL"
    for name in (f"renditions/{media_key}.mp4", f"posters/{media_key}.jpg"):  # nor can the files be fetched without one
        assert public.request.get(f"{live_server.url}/media/{name}").status == 403
    home = viewer.goto(live_server.url + reverse("videos:home"))
    assert home.ok and "Night market walk" not in viewer.locator("body").inner_text()
    print(f"\nScreenshots: {SCREENSHOTS}/moderation-queue.png, moderation-case.png, moderation-removed-public.png")
    mod.close()
    public.close()


@pytest.fixture
def reportable_video(make_playable_video):
    User.objects.create_user("vera", password="vera-pw-123")
    return make_playable_video("Street food tour", seconds=4)


def test_viewer_reports_from_the_player_page_and_follows_it_in_my_reports(live_server, reportable_video, chromium):
    video = reportable_video
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(live_server.url + reverse("login") + "?next=" + reverse("videos:player", args=[video.slug]))
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "vera-pw-123")
    page.click("form button[type=submit]")
    page.wait_for_url("**" + reverse("videos:player", args=[video.slug]))
    page.click("text=Report this video")
    page.check("input[name=reason][value=violence]")
    page.fill(".mod-report__form textarea[name=text]", "A fight starts at 0:02")
    page.screenshot(path=str(SCREENSHOTS / "moderation-report-form.png"))
    page.click("text=Send report")
    page.wait_for_selector("text=Reported · under review")
    assert "your report was sent" in page.locator(".flash-stack").inner_text()
    page.goto(live_server.url + reverse("moderation:my_reports"))
    assert "Street food tour" in page.inner_text("body") and "Under review" in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / "moderation-my-reports.png"), full_page=True)
    context.close()
