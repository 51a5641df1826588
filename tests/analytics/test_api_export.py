"""History export: CSV or JSON, filtered, streamed oldest first as an attachment.
(How little memory a million rows take is measured by bench/analytics.py.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.utils import timezone
from rest_framework.test import APIClient

from analytics import views
from analytics.models import Point
from analytics.services import history
from analytics.services.history import EXPORT_HEADER
from core.roles import Role
from core.services import api_key_create
from tests.analytics.history_helpers import OTHER, SCRIPT, record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client_for: Callable[[str], APIClient]) -> APIClient:
    return client_for(Role.READONLY)


def chunks(response: Any) -> list[bytes]:
    assert response.status_code == 200, response.content
    assert response.streaming is True
    return list(response.streaming_content)


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks(response)).decode())))


def test_csv_export_streams_an_attachment_with_the_header_and_rows_oldest_first(api: APIClient) -> None:
    points = record([1.5, 2.5, 3.5], statuses=["completed", "failed", "completed"], source="schedule")
    response = api.get("/api/analytics/export", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="scriptops-history.csv"'
    rows = csv_rows(response)
    assert (
        rows[0]
        == list(EXPORT_HEADER)
        == [
            "recorded_at",
            "script_path",
            "run_id",
            "status",
            "source",
            "metric",
            "value",
        ]
    )
    assert [r[2] for r in rows[1:]] == [str(p.run_id) for p in points]
    first = rows[1]
    assert first[1:] == [SCRIPT, str(points[0].run_id), "completed", "schedule", "duration_seconds", "1.5"]
    assert first[0] == points[0].recorded_at.isoformat().replace("+00:00", "Z")
    assert rows[2][3] == "failed"


def test_csv_is_the_default_format(api: APIClient) -> None:
    record([1.0])
    assert api.get("/api/analytics/export")["Content-Type"].startswith("text/csv")


def test_json_export_is_one_array_of_rows(api: APIClient) -> None:
    points = record([1.0, 2.0])
    response = api.get("/api/analytics/export", {"format": "json"})
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="scriptops-history.json"'
    rows = json.loads(b"".join(chunks(response)))
    assert rows[0] == {
        "recorded_at": points[0].recorded_at.isoformat().replace("+00:00", "Z"),
        "script_path": SCRIPT,
        "run_id": str(points[0].run_id),
        "status": "completed",
        "source": "api",
        "metric": "duration_seconds",
        "value": 1.0,
    }
    assert [r["value"] for r in rows] == [1.0, 2.0]


def test_many_rows_come_in_several_chunks_all_in_order(api: APIClient) -> None:
    count = history.EXPORT_ROWS_PER_CHUNK * 2 + 7
    record(range(count), step=timedelta(seconds=1))
    csv_response = api.get("/api/analytics/export", {"format": "csv"})
    pieces = chunks(csv_response)
    assert len(pieces) >= 3
    rows = list(csv.reader(io.StringIO(b"".join(pieces).decode())))[1:]
    assert [float(r[-1]) for r in rows] == [float(v) for v in range(count)]
    json_pieces = chunks(api.get("/api/analytics/export", {"format": "json"}))
    assert len(json_pieces) >= 3
    assert [r["value"] for r in json.loads(b"".join(json_pieces))] == [float(v) for v in range(count)]


def test_export_applies_the_history_filters(api: APIClient) -> None:
    record([1.0, 2.0], statuses=["completed", "failed"])
    record([3.0], metric="peak_rss_mb")
    record([4.0], script_path=OTHER)
    record([5.0], start=timezone.now() - timedelta(days=400))

    def values(**params: Any) -> list[float]:
        return sorted(float(r[-1]) for r in csv_rows(api.get("/api/analytics/export", params))[1:])

    assert values() == [1.0, 2.0, 3.0, 4.0, 5.0]  # no days: everything
    assert values(days=30) == [1.0, 2.0, 3.0, 4.0]
    assert values(script_path=SCRIPT, metric="duration_seconds") == [1.0, 2.0, 5.0]
    assert values(metric="duration_seconds", days=30) == [1.0, 2.0, 4.0]
    assert values(status="failed") == [2.0]
    assert values(script_path="/none.py") == []


def test_post_takes_the_filters_in_a_json_body(api: APIClient) -> None:
    record([1.0])
    record([2.0], script_path=OTHER)
    response = api.post("/api/analytics/export", {"format": "json", "script_path": OTHER}, format="json")
    assert [r["value"] for r in json.loads(b"".join(chunks(response)))] == [2.0]


def test_exporting_nothing_gives_the_header_or_an_empty_array(api: APIClient) -> None:
    assert csv_rows(api.get("/api/analytics/export")) == [list(EXPORT_HEADER)]
    assert json.loads(b"".join(chunks(api.get("/api/analytics/export", {"format": "json"})))) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"days": 0}, "days"),
        ({"metric": "bad metric"}, "metric"),
        ({"status": "Bad Status"}, "status"),
    ],
)
def test_export_refuses_bad_parameters_with_a_json_error(
    api: APIClient, params: dict[str, Any], field: str
) -> None:
    response = api.get("/api/analytics/export", params)
    assert response.status_code == 400 and not response.streaming
    assert field in response.json()["details"]


def test_post_export_refuses_a_body_that_is_not_an_object(api: APIClient) -> None:
    response = api.post("/api/analytics/export", [1, 2], format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()["details"]


def test_export_needs_a_signed_in_caller() -> None:
    assert APIClient().get("/api/analytics/export").status_code == 401


def test_paths_and_sources_with_commas_quotes_and_newlines_are_quoted(api: APIClient) -> None:
    odd = '/srv/a,b "c"\nd.py'
    record([1.0], script_path=odd, source='x,"y')
    row = csv_rows(api.get("/api/analytics/export"))[1]
    assert row[1] == odd and row[4] == 'x,"y' and len(row) == 7
    (item,) = json.loads(b"".join(chunks(api.get("/api/analytics/export", {"format": "json"}))))
    assert item["script_path"] == odd and item["source"] == 'x,"y'


def test_a_point_without_a_run_id_is_exported_with_an_empty_one(api: APIClient) -> None:
    (point,) = record([1.0])
    Point.objects.filter(pk=point.pk).update(run_id=None)
    assert csv_rows(api.get("/api/analytics/export"))[1][2] == ""
    (item,) = json.loads(b"".join(chunks(api.get("/api/analytics/export", {"format": "json"}))))
    assert item["run_id"] is None


def test_under_asgi_the_export_is_pulled_one_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daphne serves through ASGI, where Django would read a sync generator to its end
    before sending anything: there the rows must be made as they are sent."""
    count = history.EXPORT_ROWS_PER_CHUNK * 3
    record(range(count), step=timedelta(seconds=1))
    made: list[int] = []

    def counted(filters: Any) -> Iterator[bytes]:
        for chunk in history.history_export_csv(filters):
            made.append(len(chunk))
            yield chunk

    monkeypatch.setattr(views, "history_export_csv", counted)
    issued = api_key_create(user=UserFactory(username="asgi"), name="asgi", role=Role.READONLY)

    async def fetch() -> tuple[Any, list[bytes], list[int]]:
        response = await AsyncClient().get(
            "/api/analytics/export", headers={"Authorization": f"Bearer {issued.raw}"}
        )
        pieces: list[bytes] = []
        made_when_received: list[int] = []
        async for piece in response.streaming_content:
            pieces.append(piece)
            made_when_received.append(len(made))
        return response, pieces, made_when_received

    response, pieces, made_when_received = async_to_sync(fetch)()
    assert response.status_code == 200 and response.streaming
    assert made_when_received == list(range(1, len(pieces) + 1))  # one made per one sent
    rows = list(csv.reader(io.StringIO(b"".join(pieces).decode())))
    assert rows[0] == list(EXPORT_HEADER) and [float(r[-1]) for r in rows[1:]] == [
        float(v) for v in range(count)
    ]


@pytest.mark.parametrize("microsecond", [0, 728570, 1, 999999])
def test_exported_times_read_as_the_api_writes_them_whatever_the_microseconds(
    api: APIClient, microsecond: int
) -> None:
    """Six digits of microseconds, none when they are zero (Python's isoformat) — on
    PostgreSQL, whose own text form of a time trims trailing zeros, too."""
    at = (timezone.now() - timedelta(hours=1)).replace(microsecond=microsecond)
    [point] = record([1.0], start=at)
    rows = csv_rows(api.get("/api/analytics/export", {"format": "csv"}))
    expected = point.recorded_at.isoformat().replace("+00:00", "Z")
    assert rows[1][0] == expected
    body = json.loads(b"".join(chunks(api.get("/api/analytics/export", {"format": "json"}))))
    assert body[0]["recorded_at"] == expected
