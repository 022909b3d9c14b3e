"""Forms of the web pages. The upload form checks only presence; the file itself is judged by services."""

from django import forms
from django.conf import settings

from videos.models import Video


class UploadForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="Leave empty to use the file name.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=settings.HYDRA_MAX_DESCRIPTION_CHARS
    )
    audience = forms.ChoiceField(
        label="Who can watch it",
        choices=Video.Audience.choices,
        initial=Video.Audience.PUBLIC,
        required=False,  # clients that do not ask (older scripts) publish publicly, as before
        widget=forms.RadioSelect,
    )

    file = forms.FileField(
        label="Video file",
        allow_empty_file=True,  # services.ingest_upload explains an empty file, the same way for the API
        error_messages={"required": "Choose a video file to upload."},
        widget=forms.FileInput(attrs={"accept": "video/*"}),
    )

    def clean_audience(self) -> str:
        return self.cleaned_data["audience"] or Video.Audience.PUBLIC


class EditForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=settings.HYDRA_MAX_DESCRIPTION_CHARS
    )
    poster_at = forms.FloatField(
        label="Poster frame (seconds)",
        required=False,
        min_value=0,
        help_text="Pause the video at the frame you want and press “Use this frame”, or type the second.",
    )
