from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("moderation", "0003_audit_append_only_trigger")]

    operations = [
        migrations.AlterModelOptions(
            name="case",
            options={
                "ordering": ["-opened_at"],
                "permissions": [
                    ("decide_case", "Can claim and decide moderation cases"),
                    ("decide_escalated", "Can decide escalated cases (senior)"),
                    ("reverse_decision", "Can reverse decisions (senior)"),
                ],
                "verbose_name_plural": "review queue",
            },
        ),
    ]
