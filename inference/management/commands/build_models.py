"""``manage.py build_models``: build the CNN chunk artefacts from nsfwjs and activate that version."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from inference.ml.artefacts import ArtefactError
from inference.ml.nsfwjs import NsfwjsError
from inference.services import ensure_model_version


class Command(BaseCommand):
    help = "Build (if missing) the model artefacts from the nsfwjs npm package and register the active version."

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        try:
            model_version = ensure_model_version()
        except (NsfwjsError, ArtefactError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Active model version {model_version.name} {model_version.content_hash} "
                f"({time.monotonic() - started:.1f} s)"
            )
        )
