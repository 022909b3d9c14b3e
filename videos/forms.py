"""Forms of the web pages. The upload form checks only presence; the file itself is judged by services."""

from django import forms
from django.conf import settings


class UploadForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="Leave empty to use the file name.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=settings.HYDRA_MAX_DESCRIPTION_CHARS
    )
    file = forms.FileField(
        label="Video file",
        allow_empty_file=True,  # services.ingest_upload explains an empty file, the same way for the API
        error_messages={"required": "Choose a video file to upload."},
        widget=forms.FileInput(attrs={"accept": "video/*"}),
    )
