"""One JSON shape for every API error: ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
        return ""
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def hydra_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        # Raised while DRF parses the body; Django would answer it with an HTML 400.
        exc = exceptions.ValidationError({"non_field_errors": [f"The form fields are too large: {exc}"]})
    response = exception_handler(exc, context)
    if response is None:
        return None
    # DRF answers Django's own Http404/PermissionDenied as its NotFound/PermissionDenied; name them the same way.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    fields: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = {
            key: [str(item) for item in value] if isinstance(value, list) else str(value)
            for key, value in exc.detail.items()
        }
        message = _first_message(exc.detail)
        code = "invalid"
    elif isinstance(exc, exceptions.APIException):
        message = _first_message(exc.detail)
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    else:
        message = str(exc)
        code = "error"
    if response.status_code == status.HTTP_413_REQUEST_ENTITY_TOO_LARGE and code in ("error", "invalid"):
        code = "too_large"
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response
