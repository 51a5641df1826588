from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log: one append-only record of who did what. Just above core: every
    domain app's services call :func:`audit.services.record`; core's own services reach it
    through the recorder registered here (:mod:`core.audit`)."""

    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import services, signals
        from core.audit import recorder_register

        recorder_register(services.record)
        signals.connect()
