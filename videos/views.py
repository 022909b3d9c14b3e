"""Web pages and media URLs. Thin: they translate requests into services and selectors calls."""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from videos import media_urls, selectors, services, view_counting
from videos.forms import EditForm, UploadForm
from videos.media_urls import MediaFile
from videos.models import Video
from videos.streaming import file_response
from videos.templatetags.video_format import spoken_duration
from videos.uploads import format_limit, too_large_message, upload_was_too_large

HOME_PAGE_SIZE = 24

logger = logging.getLogger(__name__)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _isolated(response: HttpResponse) -> HttpResponse:
    """Cross-origin isolation, which TF.js needs for wasm threads on the player page."""
    response["Cross-Origin-Opener-Policy"] = "same-origin"
    response["Cross-Origin-Embedder-Policy"] = "require-corp"
    return response


def home(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    videos = selectors.search_published_videos(query) if query else selectors.published_videos()
    page = Paginator(videos, HOME_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "videos/home.html", {"page": page, "query": query})


@login_required
def my_videos(request: HttpRequest) -> HttpResponse:
    videos = list(selectors.videos_owned_by(request.user))
    still_processing = any(video.status in (Video.Status.UPLOADING, Video.Status.PROCESSING) for video in videos)
    return render(request, "videos/my_videos.html", {"videos": videos, "still_processing": still_processing})


def _upload_page(request: HttpRequest, form: UploadForm, status: int = 200) -> HttpResponse:
    limits = {
        "max_upload": format_limit(settings.HYDRA_MAX_UPLOAD_BYTES),
        "max_duration": spoken_duration(settings.HYDRA_MAX_DURATION_SECONDS),
    }
    return render(request, "videos/upload.html", {"form": form, **limits}, status=status)


def _upload_failed(request: HttpRequest, form: UploadForm, status: int, code: str) -> HttpResponse:
    """The page again with the error, or for the upload script the API's JSON error shape."""
    if _wants_json(request):
        fields = {name: [str(error) for error in errors] for name, errors in form.errors.items()}
        message = next(iter(fields.values()))[0] if fields else "The upload failed."
        return JsonResponse({"error": {"code": code, "message": message, "fields": fields}}, status=status)
    return _upload_page(request, form, status)


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _upload_page(request, UploadForm())
    try:
        form = UploadForm(request.POST, request.FILES)
    except (RequestDataTooBig, TooManyFieldsSent):
        # Django refuses form fields over DATA_UPLOAD_MAX_MEMORY_SIZE; say so in the page's own error shape.
        form = UploadForm({})
        form.is_valid()
        form.errors.clear()
        form.add_error("description", "The form's text fields are too large to read.")
        return _upload_failed(request, form, 400, "fields_too_large")
    if upload_was_too_large(request):
        form.is_valid()
        form.errors["file"] = form.error_class([too_large_message()])
        return _upload_failed(request, form, 413, "too_large")
    if not form.is_valid():
        return _upload_failed(request, form, 400, "invalid")
    try:
        video = services.ingest_upload(
            owner=request.user,
            upload=form.cleaned_data["file"],
            title=form.cleaned_data["title"],
            description=form.cleaned_data["description"],
            audience=form.cleaned_data["audience"],
        )
    except services.UploadRejected as exc:
        form.add_error("file", exc.message)
        return _upload_failed(request, form, 429 if exc.rate_limited else 413 if exc.too_large else 400, exc.code)
    # The upload script follows the JSON's redirect, so both paths show the same confirmation on My videos.
    messages.success(request, f"Upload complete: “{video.title}” is being converted for the web and plays once ready.")
    if _wants_json(request):
        return JsonResponse(
            {"slug": video.slug, "status": video.status, "redirect": reverse("videos:mine")}, status=201
        )
    return redirect("videos:mine")


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, slug: str) -> HttpResponse:
    video = selectors.video_by_slug(slug)
    if video is None or not selectors.is_owner(request.user, video):
        raise Http404
    if request.method == "GET":
        form = EditForm(initial={"title": video.title, "description": video.description})
        return render(request, "videos/edit.html", {"video": video, "form": form})
    form = EditForm(request.POST)
    if form.is_valid():
        try:
            services.edit_video(
                video,
                title=form.cleaned_data["title"],
                description=form.cleaned_data["description"],
                poster_at_seconds=form.cleaned_data["poster_at"],
            )
        except services.EditRejected as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"“{video.title}” was saved.")
            return redirect("videos:mine")
    return render(request, "videos/edit.html", {"video": video, "form": form}, status=400)


@login_required
@require_POST
def delete(request: HttpRequest, slug: str) -> HttpResponse:
    video = selectors.video_by_slug(slug)
    if video is None or not selectors.is_owner(request.user, video):
        raise Http404
    services.delete_video(video, actor=request.user)
    messages.success(request, f"“{video.title}” was deleted.")
    return redirect("videos:mine")


def player(request: HttpRequest, slug: str) -> HttpResponse:
    video = selectors.video_by_slug(slug)
    if video is None:
        raise Http404
    if selectors.can_view(request.user, video):
        is_owner = selectors.is_owner(request.user, video)
        if video.is_playable and request.method == "GET":
            viewer = view_counting.viewer_key(user_id=request.user.pk, ip_address=request.META.get("REMOTE_ADDR"))
            if view_counting.count_view(video, viewer=viewer, is_owner=is_owner, day=timezone.now().date()):
                video.view_count += 1  # what the database now holds, without reading it back
        context = {
            "video": video,
            "is_owner": is_owner,
            "is_moderator": selectors.is_moderator(request.user),
        }
        return _isolated(render(request, "videos/player.html", context))
    if video.visibility == Video.Visibility.REMOVED:
        return _isolated(render(request, "videos/unavailable.html", {"video": video, "removed": True}, status=410))
    if video.visibility == Video.Visibility.RESTRICTED and video.is_playable and not request.user.is_authenticated:
        return _isolated(render(request, "videos/unavailable.html", {"video": video, "sign_in": True}, status=403))
    raise Http404


@require_http_methods(["GET", "HEAD"])
def media_file(request: HttpRequest, key: UUID, media: MediaFile) -> HttpResponse:
    """A rendition or poster on a signed URL (``videos.media_urls``): the signature is the whole check, no database
    read. With ``HYDRA_MEDIA_SERVER = "nginx"`` nginx serves these URLs and a request that reaches Django is refused
    (the site is misconfigured, and the bytes must not go through Python)."""
    if settings.HYDRA_MEDIA_SERVER != "django":
        logger.error(
            "A media request reached Django although HYDRA_MEDIA_SERVER=%s: check the nginx site.",
            settings.HYDRA_MEDIA_SERVER,
        )
        raise Http404
    try:
        media_urls.check(request.path, request.GET.get("token"), request.GET.get("expires"))
    except media_urls.MediaUrlRefused:
        return HttpResponseForbidden(media_urls.REFUSED_MESSAGE + "\n", content_type="text/plain")
    path = Path(settings.MEDIA_ROOT) / media.stored_name(key)
    if not path.is_file():
        raise Http404  # deleted with its video, or renamed when its URLs were revoked (services.revoke_media_urls)
    response = file_response(request, path, media.content_type)
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response
