from django.apps import AppConfig


class PrechecksConfig(AppConfig):
    """Pre-run checks of scripts (code analysis, secret and dependency scanning), their
    cached results and admins' accepted risks. Imports only ``core``; ``runs``, the library
    and the scheduler call :func:`prechecks.services.precheck_run`."""

    name = "prechecks"
    verbose_name = "Pre-run checks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prechecks import checks  # noqa: F401  (registers the settings' system checks)
