"""The API's token endpoint, with django-axes' lockout answered in the API's error shape."""

from __future__ import annotations

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.lockout import lockout_response


class ObtainAuthTokenThrottled(ObtainAuthToken):
    """DRF's ObtainAuthToken. Axes marks the DRF request (the object authenticate() was given) as locked
    out, which its middleware never sees, and Django turns the refusal into "wrong credentials" (400):
    so this view answers the lockout itself."""

    def post(self, request: Request, *args, **kwargs) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request._request, None, None)
            raise
