"""Upload handler that stops reading a request body as soon as it exceeds the size limit.

Django asks every upload handler before parsing a multipart body. When the declared
Content-Length is already over ``HYDRA_MAX_UPLOAD_BYTES`` plus room for the form fields,
this handler answers for the parser with an empty form, so not one byte of the body is
read; when a body without a usable length grows past the limit while streaming, it stops
the upload there. Either way the request is marked and the view answers 413.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload, TemporaryFileUploadHandler
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

# Room for the multipart boundaries, headers and the title/description fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
_TOO_LARGE_ATTRIBUTE = "hydra_upload_too_large"


def upload_was_too_large(request: HttpRequest) -> bool:
    """Whether ``SizeLimitedUploadHandler`` refused this request's body (parsing it first if nothing has yet)."""
    request.FILES  # noqa: B018 - the handlers run when the body is parsed
    return getattr(request, _TOO_LARGE_ATTRIBUTE, False)


def too_large_message() -> str:
    return f"This file is larger than the {format_limit(settings.HYDRA_MAX_UPLOAD_BYTES)} upload limit."


def format_limit(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


class SizeLimitedUploadHandler(FileUploadHandler):
    """Refuses uploads over ``HYDRA_MAX_UPLOAD_BYTES`` without reading or storing them."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.HYDRA_MAX_UPLOAD_BYTES
        self.received = 0

    def _refuse(self) -> None:
        if self.request is not None:
            setattr(self.request, _TOO_LARGE_ATTRIBUTE, True)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.limit + FORM_OVERHEAD_BYTES:
            self._refuse()
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received = start + len(raw_data)
        if self.received > self.limit:
            self._refuse()
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


# Longest extension carried into the temporary file's name (Django uses the upload's extension as its suffix).
TEMPORARY_SUFFIX_CHARS = 16


class ShortNameTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Django's temporary-file handler, but the temporary file's name never takes a long extension from the client.

    Django names the spool file ``tmpXXXX.upload<extension of the client's name>``; a name
    ending in a 250-character "extension" (or 90 CJK characters, 270 bytes) makes that longer
    than the 255 bytes a file name may have, and the upload fails with a 500. The uploaded
    file keeps the client's name (``services.kept_filename`` shortens what is stored).
    """

    def new_file(self, *args, **kwargs) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)
        extension = os.path.splitext(self.file_name or "")[1]
        safe_extension = extension if len(extension.encode()) <= TEMPORARY_SUFFIX_CHARS else ""
        self.file = TemporaryUploadedFile(
            "upload" + safe_extension, self.content_type, 0, self.charset, self.content_type_extra
        )
        self.file.name = self.file_name
