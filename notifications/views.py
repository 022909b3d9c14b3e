"""The in-site list of notifications: reading the page marks them read."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifications import selectors, services


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    notifications = list(selectors.notifications_for(request.user)[:100])
    services.mark_all_read(request.user)
    return render(request, "notifications/list.html", {"notifications": notifications})
