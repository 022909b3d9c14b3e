"""``manage.py build_models``: build the CNN chunk artefacts from nsfwjs and activate that version."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from inference import selectors
from inference.ml.artefacts import ArtefactError
from inference.ml.nsfwjs import NsfwjsError
from inference.services.pooled_heads import ensure_shipped_heads
from inference.services.registry import ensure_default_heads, ensure_model_version


class Command(BaseCommand):
    help = "Build (if missing) the model artefacts from the nsfwjs npm package and register the active version."

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        try:
            model_version = ensure_model_version()
            ensure_default_heads(model_version)
            shipped = ensure_shipped_heads(model_version)
        except (NsfwjsError, ArtefactError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Active model version {model_version.name} {model_version.content_hash} "
                f"({time.monotonic() - started:.1f} s)"
            )
        )
        for version in shipped:
            self.stdout.write(f"{version.head.category}: shipped weights registered as {version} (active)")
        for head in selectors.untrained_heads():
            self.stdout.write(
                self.style.WARNING(
                    f"{head.category}: untrained, produces no score until `manage.py train_head {head.category} ...`"
                )
            )
