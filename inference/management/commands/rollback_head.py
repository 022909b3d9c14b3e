"""``manage.py rollback_head <category> [<version>]``: list a head's versions, or make one of them active."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from inference import heads
from inference.models import Head
from inference.services import registry


class Command(BaseCommand):
    help = "Activate an earlier (or later) version of a head; without a version, list the versions."

    def add_arguments(self, parser) -> None:
        parser.add_argument("category")
        parser.add_argument("version", type=int, nargs="?")

    def handle(self, *args, category: str, version: int | None, **options) -> None:
        head = Head.objects.filter(category=category).first()
        if head is None:
            raise CommandError(f"no head {category!r}")
        if version is not None:
            try:
                chosen = registry.activate_head_version(category, version)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"{chosen} is now active"))
        for head_version in head.versions.order_by("version"):
            accuracy = heads.measured_quality(head_version.metrics)
            marker = "*" if head_version.is_active else " "
            self.stdout.write(f"{marker} v{head_version.version}  {head_version.created_at:%Y-%m-%d %H:%M}  {accuracy}")
        if not head.versions.exists():
            self.stdout.write(f"{category} has no versions: it is untrained and produces no score")
