from django.apps import AppConfig


class ShellConfig(AppConfig):
    """The project shell: settings, URLs, ASGI, ``serve`` and the system checks.

    It sits on top of every app and holds no models; an app never imports it.
    """

    name = "scriptops"
    verbose_name = "ScriptOps"

    def ready(self) -> None:
        from core.heap import settle
        from scriptops import checks  # noqa: F401  (registers system checks)

        # Last app: what every app loaded at startup is never garbage (see core.heap).
        settle()
