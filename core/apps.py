from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: users and roles, API keys, authentication, permissions,
    errors, settings helpers, throttling and middleware. Imports no other ScriptOps app."""

    name = "core"
    verbose_name = "ScriptOps accounts"
    default_auto_field = "django.db.models.BigAutoField"
