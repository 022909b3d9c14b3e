from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-up, log-in and log-out, and the throttling of failed logins (django-axes)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
