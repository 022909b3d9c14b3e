"""Log-in, sign-up and login throttling (issue 13 item 6, issue 18 item 7, issue 11's accounts app)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.inference.streaming_factories import make_ready_video

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-2026"


@pytest.fixture
def account(settings) -> User:
    settings.AXES_FAILURE_LIMIT = 5
    return User.objects.create_user("target", password=PASSWORD, is_staff=True, is_superuser=True)


def wrong_then_right(post, count: int):
    for attempt in range(count):
        post(f"wrong-{attempt}")
    return post(PASSWORD)


def test_the_api_token_endpoint_locks_out_after_repeated_failures(account):
    client = Client()

    def post(password):
        return client.post("/api/auth/token/", {"username": "target", "password": password})

    response = wrong_then_right(post, 60)
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "locked_out" and "Too many failed logins" in error["message"]


def test_the_login_page_locks_out_with_a_clear_message(account):
    client = Client()

    def post(password):
        return client.post(reverse("login"), {"username": "target", "password": password})

    response = wrong_then_right(post, 60)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_admin_login_locks_out(account):
    client = Client()

    def post(password):
        return client.post("/admin/login/", {"username": "target", "password": password, "next": "/admin/"})

    response = wrong_then_right(post, 60)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_from_one_address_lock_that_address_for_every_account(account):
    User.objects.create_user("other", password=PASSWORD)
    client = Client(REMOTE_ADDR="198.51.100.7")
    for attempt in range(5):
        client.post(reverse("login"), {"username": f"guess-{attempt}", "password": "x"})
    assert client.post(reverse("login"), {"username": "other", "password": PASSWORD}).status_code == 429
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert elsewhere.post(reverse("login"), {"username": "other", "password": PASSWORD}).status_code == 302


def test_a_few_mistakes_do_not_lock_anyone_out(account):
    client = Client()
    for attempt in range(3):
        assert client.post(reverse("login"), {"username": "target", "password": f"typo-{attempt}"}).status_code == 200
    assert client.post(reverse("login"), {"username": "target", "password": PASSWORD}).status_code == 302


def test_an_anonymous_reporter_is_told_why_and_sign_up_keeps_the_way_back():
    video = make_ready_video(title="Harbour at dusk")
    player = reverse("videos:player", args=[video.slug])
    client = Client()
    page = client.get(reverse("login"), {"next": player}).content.decode()
    assert "Log in to report “Harbour at dusk”" in page
    assert f'href="{reverse("signup")}?next={player}"' in page

    signup = client.get(reverse("signup"), {"next": player}).content.decode()
    assert f'name="next" value="{player}"' in signup and "Harbour at dusk" in signup
    response = client.post(
        reverse("signup"),
        {"username": "newcomer", "password1": "a-long-pass-2026", "password2": "a-long-pass-2026", "next": player},
    )
    assert response.status_code == 302 and response["Location"] == player


def test_sign_up_never_redirects_off_site():
    response = Client().post(
        reverse("signup"),
        {
            "username": "newcomer",
            "password1": "a-long-pass-2026",
            "password2": "a-long-pass-2026",
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("videos:upload")


def test_failures_spread_over_many_addresses_lock_the_account(account):
    for attempt in range(5):
        Client(REMOTE_ADDR=f"198.51.100.{attempt + 1}").post(
            reverse("login"), {"username": "target", "password": f"wrong-{attempt}"}
        )
    fresh = Client(REMOTE_ADDR="203.0.113.50")
    assert fresh.post(reverse("login"), {"username": "target", "password": PASSWORD}).status_code == 429
