"""The site's error pages: a browser gets an HTML page, the API and machines keep JSON."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def crashing_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret page detail")


def forbidden_page(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("admins only")


def suspicious_page(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation("odd header")


urlpatterns = [
    path("crash", crashing_page),
    path("api/crash", crashing_page),
    path("forbidden", forbidden_page),
    path("suspicious", suspicious_page),
]
handler400 = "core.exception_handler.error_400"
handler403 = "core.exception_handler.error_403"
handler404 = "core.exception_handler.error_404"
handler500 = "core.exception_handler.error_500"


@pytest.mark.django_db
def test_a_browser_gets_an_html_404_with_a_way_back() -> None:
    response = Client().get("/no/such/page/", **HTML)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "Page not found" in body
    assert 'href="/"' in body
    assert 'data-status="404"' in body


@pytest.mark.django_db
def test_the_api_keeps_its_json_404_even_for_a_browser() -> None:
    response = Client().get("/api/no-such-endpoint", **HTML)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_a_client_that_does_not_ask_for_html_gets_json() -> None:
    response = Client().get("/no/such/page/", HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.urls(__name__)
def test_a_crashing_page_shows_an_html_500_without_the_detail() -> None:
    response = Client(raise_request_exception=False).get("/crash", **HTML)
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "secret page detail" not in body


@pytest.mark.urls(__name__)
def test_a_crash_under_the_api_path_stays_json() -> None:
    response = Client(raise_request_exception=False).get("/api/crash", **HTML)
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "Internal server error.", "details": {}}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("url", "status", "title"), [("/forbidden", 403, "Not allowed"), ("/suspicious", 400, "Bad request")]
)
def test_403_and_400_pages_for_a_browser_and_json_otherwise(url: str, status: int, title: str) -> None:
    page = Client().get(url, **HTML)
    assert page.status_code == status
    assert title in page.content.decode()
    machine = Client().get(url)
    assert machine.status_code == status
    assert machine.json()["error"] in ("permission_denied", "bad_request")
