"""Upload handler that stops reading a request body as soon as it exceeds the size limit."""

from django.core.files.uploadhandler import FileUploadHandler


class SizeLimitedUploadHandler(FileUploadHandler):
    pass
