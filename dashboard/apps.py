from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The web dashboard's pages: server-rendered shells that static/js/ fills from the API."""

    name = "dashboard"
    verbose_name = "ScriptOps dashboard"
