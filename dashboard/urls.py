"""The dashboard's pages: shells filled from the API by static/js/.

A trailing slash is optional, as on the API (APPEND_SLASH is off).
"""

from django.urls import URLPattern, URLResolver, re_path

from dashboard.pages import analytics, audit, library, runs, scheduler

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^$", runs.runs_page, name="runs-page"),
    re_path(r"^runs/(?P<pk>[0-9a-fA-F-]{32,36})/?$", runs.run_page, name="run-page"),
    re_path(r"^system/?$", runs.system_page, name="system-page"),
    re_path(r"^keys/?$", runs.keys_page, name="keys-page"),
    re_path(r"^login/?$", runs.LoginView.as_view(), name="login"),
    re_path(r"^logout/?$", runs.LogoutView.as_view(), name="logout"),
    re_path(r"^library/?$", library.library_page, name="library-page"),
    re_path(r"^scheduler/?$", scheduler.scheduler_page, name="scheduler-page"),
    re_path(r"^analytics/?$", analytics.analytics_page, name="analytics-page"),
    re_path(r"^audit/?$", audit.audit_page, name="audit-page"),
]
