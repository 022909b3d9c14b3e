"""The first hour of a newcomer, on what ``make run`` serves: a fresh SQLite database, the demo data,
in-process tasks and one daphne, every browser from 127.0.0.1 (issue 18).

A lone anonymous viewer's analysis reaches the moderator; then the whole loop: sign up, upload, watch,
report, decide, appeal, and the appeal decided by a second moderator. Assertions are on what a person
sees. Every page is photographed at 1280 px and 390 px (test-artifacts/screenshots/first-hour/), and any
console error or failed request on any page fails the test.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.browser import AUTOPLAY_ARGS, SCREENSHOTS, launch_chromium
from tests.live_site import free_port, wait_for_port
from videos.synthetic import write_video

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = SCREENSHOTS / "first-hour"
WIDTHS = {"wide": (1280, 860), "phone": (390, 844)}
FIGHT_SURVEILLANCE = ROOT.parent / "shared" / "datasets" / "fight-surveillance"
ANALYSIS_SECONDS = 240  # model load, playback of an 8 s clip and the in-process server checks, on 2 slow cores


def _make_run_env(folder: Path) -> dict[str, str]:
    """The environment ``make run`` has: no DATABASE_URL, REDIS_URL or HYDRA_TASKS_EAGER (a SQLite file here)."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "HYDRA_TASKS_EAGER", "DATABASE_URL"}}
    env |= {"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "HYDRA_MEDIA_ROOT": str(folder / "media")}
    return env


@pytest.fixture(scope="module")
def make_run_site(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """migrate, build_models, seed_demo and daphne as ``make run`` runs them; yields the base URL and daphne's log."""
    folder = tmp_path_factory.mktemp("make-run")
    env = _make_run_env(folder)
    for command in (["migrate", "--noinput"], ["build_models"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    log = folder / "daphne.log"
    with log.open("wb") as output:
        daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hydra_site.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(daphne, port, log)
            yield f"http://127.0.0.1:{port}", log
        finally:
            daphne.terminate()
            daphne.wait(timeout=30)


@dataclass
class Person:
    """One browser profile (its own cookies and storage), with everything its console said."""

    name: str
    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shoot(self, name: str) -> None:
        """The page as it stands, at both widths."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in WIDTHS.items():
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size({"width": WIDTHS["wide"][0], "height": WIDTHS["wide"][1]})

    def log_in(self, username: str, password: str) -> None:
        self.go("/accounts/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("form button[type=submit]")
        self.page.wait_for_load_state()

    def log_out(self) -> None:
        self.page.context.clear_cookies()


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=AUTOPLAY_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def people(chromium_browser: Browser, make_run_site) -> Iterator[callable]:
    base, _ = make_run_site
    made: list[Person] = []

    def _person(name: str) -> Person:
        context = chromium_browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        # No internet, as on a laptop offline: anything not served by this site fails (and fails the test).
        context.route(re.compile(r"^(?!" + re.escape(base) + r"/).*"), lambda route: route.abort())
        person = Person(name, context.new_page(), base)

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning") and not _expected(person, message.text):
                person.errors.append(f"{message.type}: {message.text} ({message.location.get('url')})")

        person.page.on("console", on_console)
        person.page.on("pageerror", lambda error: person.errors.append(f"pageerror: {error}"))
        made.append(person)
        return person

    yield _person
    problems = {person.name: person.errors for person in made if person.errors}
    for person in made:
        person.page.context.close()
    assert not problems, f"console errors: {problems}"


def _expected(person: Person, text: str) -> bool:
    """A page that answers 403 or 410 on purpose makes Chromium log its status; nothing else is excused."""
    match = re.search(r"status of (\d+)", text)
    return bool(match) and int(match.group(1)) in person.expected_statuses


def watch_until_analysed(person: Person) -> str:
    """Play the player page's video muted and wait for the analysis status to finish; returns its last words."""
    page = person.page
    page.evaluate("() => { const v = document.querySelector('video#player'); v.muted = true; v.play(); }")
    root = page.locator("#hydra-analysis")
    expect(root).to_have_attribute("data-state", re.compile("running|done"), timeout=60_000)
    bar = page.locator("#hydra-analysis [role=progressbar]")
    expect(bar).to_be_visible()
    expect(root).to_have_attribute("data-state", "done", timeout=ANALYSIS_SECONDS * 1000)
    assert bar.get_attribute("aria-valuenow") == bar.get_attribute("aria-valuemax")
    return page.locator("#hydra-analysis [data-role=status]").inner_text()


def open_video(person: Person, title: str) -> None:
    person.go("/")
    person.page.get_by_role("link", name=title).first.click()
    person.page.wait_for_url("**/v/*/")


def test_a_lone_viewer_analysis_reaches_the_moderator(people, make_run_site):
    """Priority one of issue 18: nothing but ``make run`` and one anonymous viewer, and a moderator sees a verdict."""
    _, log = make_run_site
    assert "HYDRA_TRUST_REPLICAS=1" in log.read_text(), "the trust rule is printed when the server starts"
    viewer = people("anonymous viewer")
    viewer.go("/")
    viewer.shoot("home-anonymous")
    viewer.page.set_viewport_size({"width": 390, "height": 844})
    expect(viewer.page.locator(".topbar__links")).to_be_hidden()
    viewer.page.get_by_text("Menu").click()
    menu = viewer.page.locator(".topbar__menu-panel")
    for link in ("Home", "Log in", "Sign up"):
        expect(menu.get_by_role("link", name=link)).to_be_visible()
    viewer.page.screenshot(path=str(SHOTS / "menu-anonymous-phone.png"))
    viewer.page.set_viewport_size({"width": 1280, "height": 860})
    open_video(viewer, "Warm shapes")
    assert watch_until_analysed(viewer).startswith("Done: ")
    viewer.shoot("player-analysed")

    moderator = people("moderator")
    moderator.log_in("moderator", "hydra-moderator-2026")
    moderator.go("/admin/moderation/case/")
    moderator.shoot("review-queue")
    row = moderator.page.locator("#result_list tbody tr", has_text="Warm shapes")
    expect(row).to_contain_text("Automatic flag")
    score = float(row.locator(".mq-score").inner_text())
    assert score >= 0.7
    row.get_by_role("link").first.click()
    moderator.page.wait_for_url("**/admin/moderation/case/*/change/")
    expect(moderator.page.locator("text=No verdicts yet")).to_have_count(0)
    expect(moderator.page.locator(".mq-segments")).to_contain_text("Flagged")
    moderator.shoot("case-flagged")


def test_the_first_hour(people, tmp_path):
    """Sign up, upload, watch, report, decide, appeal, and the appeal decided by a second moderator."""
    newcomer = people("newcomer")
    newcomer.go("/accounts/signup/")
    newcomer.shoot("signup")
    newcomer.page.fill("#id_username", "newcomer")
    newcomer.page.fill("#id_password1", "a-long-newcomer-password")
    newcomer.page.fill("#id_password2", "a-long-newcomer-password")
    newcomer.page.click("form button[type=submit]")
    newcomer.page.wait_for_url("**/upload/")
    newcomer.shoot("upload")
    clip = write_video(tmp_path / "holiday.mp4", seconds=6, fps=12, width=480, height=270, pattern="warm")
    newcomer.page.set_input_files("#id_file", str(clip))
    newcomer.page.fill("#id_title", "My holiday")
    newcomer.page.click("#upload-submit")
    newcomer.page.wait_for_url("**/my-videos/**")
    expect(newcomer.page.locator(".flash")).to_contain_text("Upload complete")
    row = newcomer.page.locator(".video-row", has_text="My holiday")
    expect(row.locator("[data-status-badge]")).to_have_text("Published", timeout=60_000)
    newcomer.shoot("my-videos")

    reporter = people("reporter")
    reporter.log_in("demo", "hydra-demo-2026")
    open_video(reporter, "My holiday")
    watch_until_analysed(reporter)
    reporter.page.click("text=Report this video")
    reporter.page.check("input[name=reason][value=sexual]")
    reporter.page.fill("textarea[name=text]", "Looks like nudity from the start.")
    reporter.shoot("player-report-form")
    reporter.page.click("text=Send report")
    expect(reporter.page.locator(".flash")).to_be_visible()
    reporter.shoot("player-reported")
    reporter.go("/moderation/reports/")
    expect(reporter.page.locator("main")).to_contain_text("My holiday")
    reporter.shoot("my-reports-open")

    moderator = people("moderator")
    moderator.log_in("moderator", "hydra-moderator-2026")
    moderator.go("/admin/")
    expect(moderator.page.locator("#content")).to_contain_text("Review queue")
    moderator.go("/admin/moderation/case/?q=My+holiday")
    moderator.page.locator("#result_list tbody tr").first.get_by_role("link").first.click()
    page = moderator.page
    page.select_option(".mq-decide__form select[name=policy_reason]", label="Sexual content")
    page.fill(".mq-decide__form textarea[name=note]", "Close-up at 0:02.")
    moderator.shoot("case-report")
    page.click(".mq-decide__form button[value=remove]")
    expect(page.locator(".messagelist")).to_contain_text("remove")

    newcomer.go("/my-videos/")
    row = newcomer.page.locator(".video-row", has_text="My holiday")
    expect(row.locator("[data-status-badge]")).to_have_text("Removed")
    expect(row).to_contain_text("Sexual content")
    removed_url = row.locator(".video-row__title a").get_attribute("href")
    newcomer.go("/notifications/")
    expect(newcomer.page.locator("main")).to_contain_text("“My holiday”: removed")
    expect(newcomer.page.locator("main")).to_contain_text("You can appeal once")
    newcomer.shoot("notifications")

    passer_by = people("passer-by")
    passer_by.expected_statuses.add(410)
    passer_by.go(removed_url)
    expect(passer_by.page.locator("main")).to_contain_text("no longer available")
    passer_by.shoot("player-removed")
    newcomer.go("/my-videos/")
    row = newcomer.page.locator(".video-row", has_text="My holiday")
    row.locator("text=Appeal this decision").click()
    row.locator("textarea[name=text]").fill("These are shapes drawn by a computer, not people.")
    newcomer.shoot("my-videos-appeal")
    row.locator("text=Send appeal").click()
    expect(newcomer.page.locator(".video-row", has_text="My holiday")).to_contain_text("A different moderator")

    moderator.go("/admin/moderation/case/?source__exact=appeal")
    moderator.page.locator("#result_list tbody tr").first.get_by_role("link").first.click()
    expect(moderator.page.locator(".mq-decide")).to_contain_text("different moderator")
    expect(moderator.page.locator(".mq-decide button[value=approve]")).to_have_count(0)
    moderator.shoot("case-appeal-own-decision")
    appeal_case_url = moderator.page.url

    second = people("second moderator")
    second.log_in("moderator2", "hydra-moderator2-2026")
    second.page.goto(appeal_case_url)
    second.shoot("case-appeal")
    second.page.click(".mq-decide__approve button[value=approve]")
    expect(second.page.locator(".messagelist")).to_contain_text("approve")

    newcomer.go("/my-videos/")
    row = newcomer.page.locator(".video-row", has_text="My holiday")
    expect(row.locator("[data-status-badge]")).to_have_text("Published")
    expect(row).to_contain_text("the video is back up")
    newcomer.shoot("my-videos-overturned")
    row.get_by_role("link", name="Edit").click()
    newcomer.page.fill("#id_description", "Shapes on pink, drawn by a computer.")
    newcomer.page.fill("#id_poster_at", "3")
    newcomer.shoot("edit")
    newcomer.page.get_by_role("button", name="Save").click()
    expect(newcomer.page.locator(".flash")).to_contain_text("was saved")
    reporter.go("/moderation/reports/")
    expect(reporter.page.locator("main")).to_contain_text("My holiday")
    reporter.shoot("my-reports-handled")
    reporter.go("/notifications/")
    expect(reporter.page.locator("main")).to_contain_text("Your report about “My holiday” was reviewed")

    passer_by.go("/?q=drawn+pink")
    expect(passer_by.page.locator("main")).to_contain_text("1 video for “drawn pink”")
    passer_by.shoot("home-search")
    passer_by.go("/accounts/login/")
    passer_by.shoot("login")
    passer_by.go("/api/docs/")
    expect(passer_by.page.locator(".swagger-ui .title")).to_contain_text("Hydra API", timeout=20_000)
    passer_by.shoot("api-docs")


REFUSED_SESSION = """async (url) => new Promise((resolve) => {
  const socket = new WebSocket(url);
  let first = null;
  socket.onmessage = (event) => { first = first ?? JSON.parse(event.data); };
  socket.onclose = (event) => resolve({code: event.code, message: first});
})"""


def test_a_refused_analysis_session_closes_with_its_documented_code(people, make_run_site):
    """Through daphne itself (the consumer tests use Channels' communicator, which takes any close code)."""
    base, log = make_run_site
    viewer = people("viewer of a video that does not exist")
    viewer.go("/")
    closed = viewer.page.evaluate(REFUSED_SESSION, base.replace("http", "ws") + "/ws/analysis/NoSuchVideo1/")
    assert closed["code"] == 4404 and closed["message"]["code"] == "video_unavailable"
    assert "invalid type" not in log.read_text()


def sign_up(person: Person, username: str) -> None:
    person.go("/accounts/signup/")
    person.page.fill("#id_username", username)
    person.page.fill("#id_password1", f"a-long-{username}-password")
    person.page.fill("#id_password2", f"a-long-{username}-password")
    person.page.click("form button[type=submit]")
    person.page.wait_for_url("**/upload/")


def upload(person: Person, clip: Path, title: str) -> None:
    person.go("/upload/")
    person.page.set_input_files("#id_file", str(clip))
    person.page.fill("#id_title", title)
    person.page.click("#upload-submit")
    person.page.wait_for_url("**/my-videos/**")
    row = person.page.locator(".video-row", has_text=title)
    expect(row.locator("[data-status-badge]")).to_have_text("Published", timeout=60_000)


@pytest.mark.skipif(not FIGHT_SURVEILLANCE.is_dir(), reason=f"no fight-surveillance clips at {FIGHT_SURVEILLANCE}")
def test_a_new_users_fight_clip_reaches_the_queue_as_violent_and_a_harmless_clip_is_not_flagged(people, make_run_site):
    """Issue 16, done when: on what ``make run`` serves, a new user uploads a real fight clip and a real harmless one
    (fi026 and nofi026 of the fight-surveillance set of Aktı, Tataroğlu and Ekenel, IPTA 2019); an anonymous viewer
    watches both, its browser analyses them, the server settles; a moderator finds the fight in the review queue
    as violence with a time-coded segment, and the harmless clip has a verdict per category, neither flagged."""
    _, log = make_run_site
    uploader = people("new uploader")
    sign_up(uploader, "cctvnewcomer")
    fight, harmless = "Car park scuffle (fi026)", "Quiet corridor (nofi026)"
    upload(uploader, FIGHT_SURVEILLANCE / "fight" / "fi026.mp4", fight)
    upload(uploader, FIGHT_SURVEILLANCE / "noFight" / "nofi026.mp4", harmless)

    viewer = people("anonymous viewer of the new clips")
    for title in (fight, harmless):
        open_video(viewer, title)
        assert watch_until_analysed(viewer).startswith("Done: ")

    moderator = people("moderator of the new clips")
    moderator.log_in("moderator", "hydra-moderator-2026")
    moderator.go("/admin/moderation/case/?q=fi026")
    row = moderator.page.locator("#result_list tbody tr", has_text=fight)
    expect(row).to_contain_text("Automatic flag")
    expect(row).to_contain_text("violence")
    row.get_by_role("link").first.click()
    moderator.page.wait_for_url(re.compile(r"/admin/moderation/case/\d+/change/"))
    segments = moderator.page.locator(".mq-segments .mq-seg")
    expect(segments.first).to_contain_text(re.compile(r"\d+:\d\d(\.\d)?\u2013\d+:\d\d(\.\d)? violence"))
    moderator.shoot("case-violence-fight-clip")
    moderator.go("/admin/moderation/case/?q=nofi026")
    expect(moderator.page.locator("#result_list tbody tr", has_text=harmless)).to_have_count(0)

    with sqlite3.connect(log.parent / "db.sqlite3") as database:
        verdicts = dict(
            database.execute(
                "SELECT h.category, v.flagged FROM inference_verdict v JOIN videos_video video ON video.id = v.video_id"
                " JOIN inference_headversion hv ON hv.id = v.head_version_id JOIN inference_head h ON h.id = hv.head_id"
                " WHERE video.title = ? AND v.coverage = 1.0",
                (harmless,),
            ).fetchall()
        )
    assert verdicts == {"nudity": 0, "violence": 0}
