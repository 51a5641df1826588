"""API URLs of the analytics app (mounted under /api/); a trailing slash is optional."""

from django.urls import URLPattern, URLResolver, re_path

from analytics import views

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^analytics/history/?$", views.HistoryView.as_view(), name="analytics-history"),
    re_path(r"^analytics/history/stats/?$", views.HistoryStatsView.as_view(), name="analytics-history-stats"),
    re_path(r"^analytics/trends/?$", views.TrendsView.as_view(), name="analytics-trends"),
    re_path(r"^analytics/anomalies/?$", views.AnomaliesView.as_view(), name="analytics-anomalies"),
    re_path(r"^analytics/baseline/?$", views.BaselineView.as_view(), name="analytics-baseline"),
    re_path(r"^analytics/baselines/?$", views.BaselineListView.as_view(), name="analytics-baselines"),
    re_path(
        r"^analytics/baselines/(?P<pk>[0-9]{1,18})/?$",
        views.BaselineDetailView.as_view(),
        name="analytics-baseline-detail",
    ),
    re_path(r"^analytics/export/?$", views.ExportView.as_view(), name="analytics-export"),
    re_path(r"^analytics/benchmarks/?$", views.BenchmarksView.as_view(), name="analytics-benchmarks"),
    re_path(
        r"^analytics/benchmarks/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99})/regressions/?$",
        views.RegressionsView.as_view(),
        name="analytics-benchmark-regressions",
    ),
    re_path(r"^analytics/cleanup/?$", views.CleanupView.as_view(), name="analytics-cleanup"),
    re_path(r"^analytics/chart/?$", views.ChartView.as_view(), name="analytics-chart"),
    re_path(r"^analytics/overview/?$", views.OverviewView.as_view(), name="analytics-overview"),
    re_path(r"^analytics/sparklines/?$", views.SparklinesView.as_view(), name="analytics-sparklines"),
    re_path(r"^analytics/expected/?$", views.ExpectedDurationsView.as_view(), name="analytics-expected"),
    re_path(
        r"^analytics/scripts/summary/?$", views.ScriptSummaryView.as_view(), name="analytics-script-summary"
    ),
]
