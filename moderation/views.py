"""Viewer and uploader pages: report a video, see what became of one's reports, appeal a decision."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from hydra_site import client_address
from videos.models import Video
from videos.selectors import can_view, video_by_slug

from . import selectors, services
from .forms import AppealForm, ReportForm
from .models import Decision


def _viewable_video(request: HttpRequest, slug: str) -> Video:
    video = video_by_slug(slug)
    if video is None or not can_view(request.user, video):
        raise Http404
    return video


@login_required
@require_http_methods(["GET", "POST"])
def report_video(request: HttpRequest, slug: str) -> HttpResponse:
    """The report form (the player page's partial posts here); errors come back with their status code."""
    video = _viewable_video(request, slug)
    form = ReportForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.report_video(
                    video,
                    request.user,
                    form.cleaned_data["reason"],
                    form.cleaned_data["text"],
                    ip_address=client_address.from_request(request),
                )
            except services.ModerationError as exc:
                form.add_error(None, str(exc))
                status = exc.status_code
            else:
                messages.success(request, "Thanks: your report was sent to our moderators. See “My reports”.")
                return redirect("videos:player", slug=video.slug)
        else:
            status = 400
    context = {"video": video, "form": form, "open_report": selectors.open_report_by(request.user, video)}
    return render(request, "moderation/report_form.html", context, status=status)


@login_required
def my_reports(request: HttpRequest) -> HttpResponse:
    return render(request, "moderation/my_reports.html", {"reports": selectors.reports_by(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def appeal_decision(request: HttpRequest, decision_id: int) -> HttpResponse:
    """The uploader's appeal form; anyone but the uploader gets a 404 (decisions are not public records)."""
    decision = get_object_or_404(
        Decision.objects.select_related("case__video", "policy_reason"),
        pk=decision_id,
        case__video__owner=request.user,
    )
    form = AppealForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.appeal_decision(decision, request.user, form.cleaned_data["text"])
            except services.ModerationError as exc:
                form.add_error(None, str(exc))
                status = exc.status_code
            else:
                messages.success(request, "Your appeal was sent. A different moderator will review it.")
                return redirect("videos:mine")
        else:
            status = 400
    context = {
        "decision": decision,
        "video": decision.case.video,
        "form": form,
        "appealable": selectors.appealable(decision),
    }
    return render(request, "moderation/appeal_form.html", context, status=status)
