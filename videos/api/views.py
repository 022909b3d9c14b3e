"""REST API for one's own videos: upload (multipart), list, retrieve, delete."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from videos import selectors, services
from videos.api.serializers import VideoSerializer, VideoUploadSerializer
from videos.models import Video
from videos.uploads import too_large_message, upload_was_too_large


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class UploadNotAccepted(APIException):
    """The file is not a video Hydra can keep; the code says why (empty, not_video, truncated...)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_video"


class UploadsRateLimited(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "rate_limited"


class VideoPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100


@extend_schema_view(
    list=extend_schema(summary="List your videos, newest first"),
    retrieve=extend_schema(summary="One of your videos"),
    destroy=extend_schema(summary="Delete one of your videos and its files"),
)
class VideoViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = VideoSerializer
    queryset = Video.objects.none()  # typing hint for the schema; get_queryset scopes to the owner
    lookup_field = "slug"
    pagination_class = VideoPagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Video]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting the view, no user
            return Video.objects.none()
        return selectors.videos_owned_by(self.request.user)

    @extend_schema(
        summary="Upload a video",
        description=(
            "Send the file as multipart/form-data. It is probed with PyAV and rejected with 400 if it is not a "
            "whole, readable video, or 413 if it is over the size limit; then transcoded in the background "
            "(poll the video until status is ready or failed)."
        ),
        request={"multipart/form-data": VideoUploadSerializer},
        responses={
            201: VideoSerializer,
            400: OpenApiResponse(description="Not a usable video, or a field is missing."),
            413: OpenApiResponse(description="Over the upload size limit or the account's storage quota."),
            429: OpenApiResponse(description="Over the account's uploads per hour (HYDRA_UPLOADS_PER_HOUR)."),
        },
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = request.data  # parsing runs the size-limited upload handler
        if upload_was_too_large(request):
            raise UploadTooLarge(too_large_message())
        upload = VideoUploadSerializer(data=data)
        upload.is_valid(raise_exception=True)
        try:
            video = services.ingest_upload(
                owner=request.user,
                upload=upload.validated_data["file"],
                title=upload.validated_data["title"],
                description=upload.validated_data["description"],
            )
        except services.UploadRejected as exc:
            refusal = UploadsRateLimited if exc.rate_limited else UploadTooLarge if exc.too_large else UploadNotAccepted
            raise refusal(exc.message, code=exc.code) from exc
        return Response(VideoSerializer(video, context={"request": request}).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Video) -> None:
        services.delete_video(instance, actor=self.request.user)
