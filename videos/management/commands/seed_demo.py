"""``manage.py seed_demo``: the demo account and sample videos that ``make run`` shows. Safe to run again.

The samples are drawn locally with PyAV and go through the real ingest and transcode path,
so they look and behave exactly like uploads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files import File
from django.core.management.base import BaseCommand

from videos import services
from videos.models import Video
from videos.synthetic import write_video

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "hydra-demo-2026"
MODERATOR_USERNAME = "moderator"
MODERATOR_PASSWORD = "hydra-moderator-2026"
# An appeal is reviewed by a different moderator than the one who decided, and escalations by a senior.
SECOND_MODERATOR_USERNAME = "moderator2"
SECOND_MODERATOR_PASSWORD = "hydra-moderator2-2026"
SENIOR_USERNAME = "senior"
SENIOR_PASSWORD = "hydra-senior-2026"
MODERATORS = (
    (MODERATOR_USERNAME, MODERATOR_PASSWORD, "Moderators"),
    (SECOND_MODERATOR_USERNAME, SECOND_MODERATOR_PASSWORD, "Moderators"),
    (SENIOR_USERNAME, SENIOR_PASSWORD, "Senior moderators"),
)

# (title, pattern, description) of each sample, drawn at 640x360, 24 fps, 8 seconds, with a tone.
SAMPLES = [
    ("Colour bars in motion", "bars", "Scrolling test bars with a moving box, generated on this machine."),
    ("A calm gradient", "calm", "A slow colour drift: almost nothing changes from one frame to the next."),
    ("Jumping shapes", "erratic", "Fast, jerky shapes: everything changes from one frame to the next."),
    (
        "Warm shapes",
        "warm",
        "Skin-toned shapes on pink. Nothing in it breaks a rule, but the nudity model scores it about 0.85: "
        "watch it and a flagged case opens in the review queue.",
    ),
]


class Command(BaseCommand):
    help = (
        f"Create the demo account ({DEMO_USERNAME} / {DEMO_PASSWORD}), two moderators, a senior moderator "
        "(see README) and the sample videos, if missing."
    )

    def handle(self, *args, **options) -> None:
        user_model = get_user_model()
        demo, created = user_model.objects.get_or_create(username=DEMO_USERNAME)
        if created:
            demo.set_password(DEMO_PASSWORD)
            demo.save(update_fields=["password"])
            self.stdout.write(f"Created the demo account {DEMO_USERNAME} / {DEMO_PASSWORD}")
        for username, password, group in MODERATORS:
            self._ensure_moderator(user_model, username, password, group)
        for seed, (title, pattern, description) in enumerate(SAMPLES):
            self._ensure_sample(demo, title, pattern, description, seed)

    def _ensure_moderator(self, user_model, username: str, password: str, group: str) -> None:
        """A staff account in a moderators' group, so every flow of the review queue can be tried at once."""
        moderator, created = user_model.objects.get_or_create(username=username, defaults={"is_staff": True})
        if created:
            moderator.set_password(password)
            moderator.save(update_fields=["password"])
            self.stdout.write(f"Created the account {username} / {password} ({group})")
        moderator.groups.add(Group.objects.get(name=group))

    def _ensure_sample(self, demo, title: str, pattern: str, description: str, seed: int) -> None:
        existing = Video.objects.filter(owner=demo, title=title).first()
        if existing is not None and existing.status != Video.Status.FAILED:
            self.stdout.write(f"Sample “{title}” is already there ({existing.status})")
            return
        if existing is not None:
            services.delete_video(existing)
        with tempfile.TemporaryDirectory() as folder:
            path = write_video(
                Path(folder) / f"{pattern}.mp4", seconds=8, fps=24, width=640, height=360, pattern=pattern,
                seed=seed, audio=True,
            )  # fmt: skip
            with path.open("rb") as handle:
                video = services.ingest_upload(
                    owner=demo, upload=File(handle, name=path.name), title=title, description=description
                )
        video.refresh_from_db()
        self.stdout.write(f"Added sample “{title}” ({video.get_status_display().lower()}) at /v/{video.slug}/")
