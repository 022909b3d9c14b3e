"""Renditions and posters are named by ``media_key`` (rotated to revoke their URLs), no longer by ``storage_key``.

Existing rows get their ``storage_key`` as ``media_key``, so every file already stored keeps its name.
"""

import uuid

from django.db import migrations, models


def media_key_from_storage_key(apps, schema_editor):
    Video = apps.get_model("videos", "Video")
    Video.objects.update(media_key=models.F("storage_key"))


class Migration(migrations.Migration):
    dependencies = [("videos", "0005_video_audience_public_unlisted_private")]

    operations = [
        migrations.AddField(model_name="video", name="media_key", field=models.UUIDField(editable=False, null=True)),
        migrations.RunPython(media_key_from_storage_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="video",
            name="media_key",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
