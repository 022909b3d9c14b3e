from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse
from rest_framework import serializers

from videos.media_urls import MediaFile, url_for_viewer
from videos.models import Video


class VideoSerializer(serializers.ModelSerializer):
    status_label = serializers.CharField(read_only=True, help_text="The state in words, as shown on My videos.")
    player_url = serializers.SerializerMethodField()
    stream_url = serializers.SerializerMethodField(
        help_text="The rendition's signed URL (HTTP Range), valid HYDRA_MEDIA_URL_SECONDS plus the video's length."
    )
    poster_url = serializers.SerializerMethodField(help_text="The poster's signed URL, valid as long as stream_url.")

    class Meta:
        model = Video
        fields = [
            "slug",
            "title",
            "description",
            "status",
            "status_label",
            "failure_reason",
            "visibility",
            "visibility_reason",
            "original_filename",
            "container",
            "video_codec",
            "audio_codec",
            "width",
            "height",
            "fps",
            "duration_ms",
            "size_bytes",
            "rendition_width",
            "rendition_height",
            "rendition_fps",
            "rendition_duration_ms",
            "view_count",
            "created_at",
            "processed_at",
            "player_url",
            "stream_url",
            "poster_url",
        ]
        read_only_fields = fields

    def _absolute(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def _signed(self, video: Video, media: MediaFile) -> str | None:
        """The signed media URL for the requesting user; the API never lists videos it would not sign for."""
        request = self.context.get("request")
        url = url_for_viewer(request.user if request else AnonymousUser(), video, media)
        return self._absolute(url) if url else None

    def get_player_url(self, video: Video) -> str:
        return self._absolute(reverse("videos:player", kwargs={"slug": video.slug}))

    def get_stream_url(self, video: Video) -> str | None:
        return self._signed(video, MediaFile.RENDITION) if video.is_playable else None

    def get_poster_url(self, video: Video) -> str | None:
        return self._signed(video, MediaFile.POSTER) if video.is_playable else None


class VideoUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,  # services.ingest_upload explains an empty file, the same way as the page
        help_text="The video file. Its content is probed; the name and Content-Type are not trusted.",
    )
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=settings.HYDRA_MAX_DESCRIPTION_CHARS
    )
