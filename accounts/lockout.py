"""What a locked-out login attempt gets (``AXES_LOCKOUT_CALLABLE``): a clear message, 429, in the caller's format.

django-axes counts failures per account and per client address (settings ``AXES_*``, README);
this only words the refusal: JSON for the API, the login page with the message otherwise.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_OUT_STATUS = 429


def lockout_message() -> str:
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return (
        f"Too many failed logins for this account or from this address. "
        f"Try again in {minutes} minutes, or reset your password."
    )


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None):
    message = lockout_message()
    if request.path.startswith("/api/"):
        body = {"error": {"code": "locked_out", "message": message, "fields": {}}}
        return JsonResponse(body, status=LOCKED_OUT_STATUS)
    form = AuthenticationForm(request, data={})  # bound and empty: no password is checked again
    form.is_valid()
    form.errors.clear()
    form.add_error(None, message)
    context = {"form": form, "next": request.POST.get("next", ""), "title": "Log in"}
    template = "admin/login.html" if request.path.startswith("/admin/") else "registration/login.html"
    return render(request, template, context, status=LOCKED_OUT_STATUS)
