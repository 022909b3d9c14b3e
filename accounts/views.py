"""Account pages: sign-up (Django ships no view for it) and the log-in page that says why you are there."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from videos.selectors import video_by_slug


def safe_next(request: HttpRequest) -> str:
    """The ``next`` URL of the request (query or form) when it points into this site, else ""."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if allowed else ""


def login_purpose(target: str) -> str:
    """Why the visitor was sent to log in, in words, from where they are going next ("" when unknown).

    An anonymous viewer who presses "Report" on a player page is sent here with ``next`` set
    to that page; without a word of explanation the login form looks like a dead end.
    """
    try:
        match = resolve(target.split("?", 1)[0])
    except Resolver404:
        return ""
    video = video_by_slug(match.kwargs["slug"]) if "slug" in match.kwargs else None
    title = f"“{video.title}”" if video is not None else "this video"
    if match.view_name == "moderation:report":
        return f"Log in to report {title}. Reports come from accounts so that moderators can follow up."
    if match.view_name == "videos:player":
        return f"Log in to report {title} or appeal a decision; you will be taken back to it."
    if match.view_name == "videos:upload":
        return "Log in to upload a video."
    return ""


class HydraLoginView(auth_views.LoginView):
    """Django's login view, plus the reason for the detour and a sign-up link that keeps ``next``."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        target = safe_next(self.request)
        context["purpose"] = login_purpose(target) if target else ""
        return context


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    target = safe_next(request)
    if request.user.is_authenticated:
        return redirect(target or "videos:mine")
    form = UserCreationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(target or "videos:upload")
    context = {"form": form, "next": target, "purpose": login_purpose(target) if target else ""}
    return render(request, "registration/signup.html", context, status=400 if form.errors else 200)
