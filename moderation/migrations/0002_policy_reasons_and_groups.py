"""Seed the policy list and create the Moderators and Senior moderators groups.

Permissions are created here (get_or_create) rather than waiting for post_migrate, so the
groups get them on a fresh database. ``videos.view_hidden_video`` is declared on
Video.Meta.permissions by the videos app; it is referenced by codename here.
"""

from django.db import migrations

from moderation.defaults import ensure_moderation_defaults


def forwards(apps, schema_editor):
    ensure_moderation_defaults(apps)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Moderators", "Senior moderators"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0001_initial"),
        ("videos", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
