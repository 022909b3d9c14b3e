"""Re-queue or fail videos whose transcoding died, now (the `beat` process runs the same sweep every 5 minutes)."""

from django.core.management.base import BaseCommand

from videos import services


class Command(BaseCommand):
    help = "Re-queue or fail videos stuck in processing, and remove the .part files of dead transcodes."

    def handle(self, *args, **options) -> None:
        result = services.sweep_stuck_videos()
        self.stdout.write(
            f"requeued {len(result.requeued)}, failed {len(result.failed)}, removed {result.removed_parts} .part files"
        )
