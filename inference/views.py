"""HTTP views of the inference app."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from django.views.decorators.http import require_safe

from inference import selectors

IMMUTABLE = "public, max-age=31536000, immutable"
_CONTENT_TYPES = {".json": "application/json", ".bin": "application/octet-stream"}


@require_safe
def model_artefact(request: HttpRequest, content_hash: str, name: str) -> HttpResponse:
    """A browser file of a model version. Its URL names its content, so it is cached forever."""
    path = selectors.browser_artefact_path(content_hash, name)
    if path is None:
        raise Http404("no such model artefact")
    etag = f'"{content_hash}"'
    if_none_match = parse_etags(request.headers.get("If-None-Match", ""))
    if etag in if_none_match or "*" in if_none_match:
        response: HttpResponse = HttpResponseNotModified()
    else:
        try:
            response = FileResponse(path.open("rb"), content_type=_CONTENT_TYPES.get(path.suffix))
        except FileNotFoundError as exc:
            raise Http404("no such model artefact") from exc
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
