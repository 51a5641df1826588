from django.apps import AppConfig


class ScriptOpsConfig(AppConfig):
    name = "scriptops"
    verbose_name = "ScriptOps accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scriptops import checks  # noqa: F401  (registers system checks)
