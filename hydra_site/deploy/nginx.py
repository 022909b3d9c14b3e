"""The nginx site for a production Hydra, rendered from the settings it must agree with.

The template (nginx-site.conf beside this file) takes the media and static folders, the upload limit and the
media URL secret from the settings, so nginx checks the same signed URLs that ``videos.media_urls`` issues.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template import Context, Engine

from videos.media_urls import REFUSED_MESSAGE, media_url_secret

TEMPLATE = Path(__file__).with_name("nginx-site.conf")
# Room for the multipart form around the largest file, so that Django, not nginx, answers an oversize upload.
FORM_MARGIN_BYTES = 16 * 1024 * 1024


def render_site(*, listen: str, upstream: str, server_name: str = "_") -> str:
    """The site configuration: nginx listens on ``listen`` (e.g. ``80``) and proxies to daphne at ``upstream``."""
    engine = Engine(autoescape=False)
    return engine.from_string(TEMPLATE.read_text()).render(
        Context(
            {
                "listen": listen,
                "upstream": upstream,
                "server_name": server_name,
                "max_body_bytes": settings.HYDRA_MAX_UPLOAD_BYTES + FORM_MARGIN_BYTES,
                "media_root": Path(settings.MEDIA_ROOT).resolve(),
                "static_root": Path(settings.STATIC_ROOT).resolve(),
                "media_url_secret": media_url_secret(),
                "refused_message": REFUSED_MESSAGE,
            }
        )
    )
