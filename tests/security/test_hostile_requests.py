"""Hostile bodies, headers and query strings: a 4xx JSON error naming the problem, never a 5xx.

Deeply nested and giant JSON, wrong JSON types, invalid UTF-8, abusive headers and query
strings, against the endpoints that take a body (runs, library, scheduler, analytics,
keys) and a few that take filters.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core.errors import TooLarge
from core.parsers import BoundedJSONParser
from core.roles import Role

BODY_ENDPOINTS = [
    "/api/run/",
    "/api/keys/",
    "/api/library/check/",
    "/api/library/folder-roots/",
    "/api/library/tags/",
    "/api/scheduler/tasks/",
    "/api/analytics/export/",
    "/api/analytics/baseline/",
]
QUERY_ENDPOINTS = ["/api/runs/", "/api/library/scripts/", "/api/analytics/history/", "/api/browse/"]


@pytest.fixture
def api(db, roots, client_for) -> APIClient:
    return client_for(Role.ADMIN)


def json_error(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body["error"], str) and body["message"], body
    return body


def post_raw(api: APIClient, url: str, body: bytes, content_type: str = "application/json") -> Any:
    return api.generic("POST", url, body, content_type=content_type)


@pytest.mark.parametrize("url", BODY_ENDPOINTS)
def test_deeply_nested_json_is_a_400(api: APIClient, url: str) -> None:
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        body_ = json_error(post_raw(api, url, body), 400)
        assert body_["error"] == "parse_error"


@pytest.mark.parametrize("url", BODY_ENDPOINTS)
def test_a_body_over_the_size_limit_is_refused(api: APIClient, url: str) -> None:
    big = json.dumps({"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}).encode()
    body = json_error(post_raw(api, url, big), 413)
    assert body["error"] == "payload_too_large", body
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in body["message"], body


def test_a_body_just_under_the_limit_is_parsed(api: APIClient) -> None:
    """The bound is the setting, not a smaller guess: a large valid body still reaches
    the serializer (which names the field that is too long)."""
    big = json.dumps({"script_path": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100)}).encode()
    body = json_error(post_raw(api, "/api/run/", big), 400)
    assert body["error"] == "validation_error" and "script_path" in body["message"], body


@pytest.mark.parametrize("url", BODY_ENDPOINTS)
def test_invalid_utf8_and_broken_json_are_400(api: APIClient, url: str) -> None:
    for body in (b'{"name": "\xff\xfe"}', b"\xef\xbb\xbf{", b'{"name": "a"', b"\x00" * 64, b"NaN"):
        json_error(post_raw(api, url, body), 400)


@pytest.mark.parametrize("url", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        12,
        None,
        True,
        {"name": {"$gt": ""}},
        {"name": ["a"] * 1000},
        {"path": 1e308, "script_path": []},
    ],
    ids=["list", "string", "number", "null", "bool", "operator", "array-name", "wrong-types"],
)
def test_wrong_json_types_are_400(api: APIClient, url: str, body: Any) -> None:
    response = api.post(url, body, format="json")
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        json_error(response, response.status_code)


def test_the_error_names_the_field_with_the_wrong_type(api: APIClient) -> None:
    body = json_error(api.post("/api/run/", {"script_path": ["a"]}, format="json"), 400)
    assert "script_path" in body["message"], body


@pytest.mark.parametrize("url", QUERY_ENDPOINTS)
def test_abusive_query_strings_are_not_5xx(api: APIClient, url: str) -> None:
    queries = [
        "&".join(["script_path=a"] * 2000),  # repeated parameters
        "search=" + "x" * 100_000,  # a 100 KB query string
        "page=" + "9" * 400,
        "page_size=-1&ordering=" + ",".join(["-id"] * 500),
        "%ff%fe=%c0%ae&\ud800=1".encode("utf-8", "surrogatepass").decode("latin-1"),
        "a" * 5000 + "=1",
        "ordering=__class__&limit=1e400&offset=-5",
    ]
    for query in queries:
        response = api.get(url, QUERY_STRING=query)
        assert response.status_code < 500, (query[:80], response.content[:300])
        if response.status_code >= 400:
            json_error(response, response.status_code)


def test_too_many_fields_is_a_400(api: APIClient) -> None:
    form = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10))
    response = post_raw(api, "/api/run/upload/", form.encode(), "application/x-www-form-urlencoded")
    body = json_error(response, 400)
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in body["message"], body


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer " + "x" * 10_000},
        {"HTTP_AUTHORIZATION": "Bearer \udcff\udcfe".encode("utf-8", "surrogateescape").decode("latin-1")},
        {"HTTP_AUTHORIZATION": "Basic !!!notbase64"},
        {"HTTP_X_FORWARDED_FOR": ", ".join(["1.2.3.4"] * 2000)},
        {"HTTP_ACCEPT": "application/json;q=" + "9" * 1000},
        {"HTTP_ACCEPT_LANGUAGE": "x" * 10_000},
        {"HTTP_COOKIE": "sessionid=" + "z" * 8000 + "; csrftoken=\x00"},
        {"CONTENT_TYPE": "application/json; charset=utf-99"},
        {"HTTP_HOST": "evil.example.com"},
        {"HTTP_X_CSRF_TOKEN": "\x00" * 100},
    ],
    ids=[
        "long-bearer",
        "invalid-utf8-bearer",
        "bad-basic",
        "xff-flood",
        "accept",
        "lang",
        "cookie",
        "charset",
        "host",
        "csrf",
    ],
)
def test_abusive_headers_are_not_5xx(db, roots, headers: dict[str, str]) -> None:
    client = APIClient()
    for method, url in [("GET", "/api/runs/"), ("POST", "/api/run/"), ("GET", "/api/health/")]:
        response = client.generic(
            method, url, b'{"script_path": "x"}', content_type="application/json", **headers
        )
        assert response.status_code < 500, (headers, url, response.content[:300])
        if response.status_code >= 400 and url != "/api/health/":
            json_error(response, response.status_code)


def test_an_oversized_upload_is_a_413(api: APIClient, roots) -> None:
    boundary = "b0undary"
    payload = b"#!/bin/sh\n" + b"#" * (settings.MAX_UPLOAD_BYTES + 1)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.sh"\r\n\r\n'.encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = post_raw(api, "/api/run/upload/", body, f"multipart/form-data; boundary={boundary}")
    json_error(response, 413)
    assert not any(settings.UPLOADS_ROOT.rglob("big.sh")) if settings.UPLOADS_ROOT.exists() else True


def test_the_json_bound_holds_without_a_content_length(settings) -> None:
    """A chunked body (no Content-Length) is bounded too: the parser stops reading."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 16
    stream = io.BytesIO(b'{"a": "' + b"x" * 10_000_000 + b'"}')
    with pytest.raises(TooLarge):
        BoundedJSONParser().parse(stream, "application/json", {})
    assert stream.tell() == 17  # read the limit plus one byte, not ten megabytes
    assert BoundedJSONParser().parse(io.BytesIO(b'{"a": 1}'), "application/json", {}) == {"a": 1}


def test_too_many_files_is_a_400(api: APIClient) -> None:
    boundary = "manyfiles"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.sh"\r\n\r\necho\r\n'
    body = (part * (settings.DATA_UPLOAD_MAX_NUMBER_FILES + 5) + f"--{boundary}--\r\n").encode()
    response = post_raw(api, "/api/run/upload/", body, f"multipart/form-data; boundary={boundary}")
    body_ = json_error(response, 400)
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in body_["message"], body_


def test_a_malformed_multipart_body_is_a_400(api: APIClient) -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.sh"\r\n\r\necho'  # no end
    response = post_raw(api, "/api/run/upload/", body, "multipart/form-data; boundary=x")
    json_error(response, 400)


BIG = "9223372036854775809"  # 2**63 + 1: more than SQLite's INTEGER holds


@pytest.mark.parametrize(
    "url",
    [
        f"/api/library/scripts/?root_id={BIG}",  # found by make fuzz: OverflowError, a 500
        f"/api/runs/?script={BIG}",
        f"/api/library/scripts/{BIG}/",
        f"/api/library/folder-roots/{BIG}/",
        f"/api/scheduler/tasks/{BIG}/",
        f"/api/keys/{BIG}/",
        f"/api/runs/?page={BIG}",
    ],
)
def test_integers_past_64_bits_are_not_5xx(api: APIClient, url: str) -> None:
    response = api.get(url)
    assert response.status_code in (400, 404), (response.status_code, response.content[:300])
    json_error(response, response.status_code)


def test_an_id_filter_past_64_bits_names_the_parameter(api: APIClient) -> None:
    body = json_error(api.get(f"/api/library/scripts/?root_id={BIG}"), 400)
    assert "root_id" in body["message"], body
    body = json_error(api.get(f"/api/runs/?script={BIG}"), 400)
    assert "script" in body["message"], body
