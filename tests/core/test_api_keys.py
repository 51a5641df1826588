"""API keys: authentication by either header, expiry, revocation, and the /api/keys endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiKey, User, hash_api_key
from core.roles import Role
from core.services import _key_with_user, api_key_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _x_api_key(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def reader_key():
    return api_key_create(user=UserFactory(username="reader", role=Role.READONLY), name="r")


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("make_client", [_bearer, _x_api_key], ids=["bearer", "x-api-key"])
def test_both_header_styles_authenticate(make_client, reader_key) -> None:
    response = make_client(reader_key.raw).get("/api/runs")
    assert response.status_code == 200


def test_bearer_scheme_is_case_insensitive(reader_key) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {reader_key.raw}")
    assert client.get("/api/runs").status_code == 200


@pytest.mark.parametrize("make_client", [_bearer, _x_api_key], ids=["bearer", "x-api-key"])
@pytest.mark.parametrize("raw", ["sops_not-a-real-key", "garbage", "sops_"])
def test_unknown_key_is_401_json(make_client, raw: str) -> None:
    response = make_client(raw).get("/api/runs")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "authentication_failed"
    assert "API key" in body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_missing_credentials_is_401() -> None:
    response = APIClient().get("/api/runs")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_expired_key_is_401() -> None:
    issued = api_key_create(user=UserFactory(role=Role.ADMIN), name="short", expires_days=1)
    client = _bearer(issued.raw)
    assert client.get("/api/runs").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = client.get("/api/runs")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_revoked_key_is_401(reader_key) -> None:
    client = _x_api_key(reader_key.raw)
    assert client.get("/api/runs").status_code == 200
    ApiKey.objects.filter(pk=reader_key.key.pk).update(revoked_at=timezone.now())
    assert client.get("/api/runs").status_code == 401


def test_key_of_inactive_user_is_401(reader_key) -> None:
    reader_key.key.user.is_active = False
    reader_key.key.user.save(update_fields=["is_active"])
    assert _bearer(reader_key.raw).get("/api/runs").status_code == 401


def test_use_is_recorded_on_the_key(reader_key) -> None:
    assert reader_key.key.last_used_at is None
    _bearer(reader_key.raw).get("/api/runs")
    reader_key.key.refresh_from_db()
    assert reader_key.key.last_used_at is not None


def test_the_compiled_lookup_loads_the_key_and_its_user_as_the_orm_does(reader_key) -> None:
    # One joined statement compiled per connection, instances made with from_db: every
    # field of both must be what the ORM reads (dates converted, the FK set, nothing deferred).
    ApiKey.objects.filter(pk=reader_key.key.pk).update(
        last_used_at=timezone.now() - timedelta(hours=2), expires_at=timezone.now() + timedelta(days=3)
    )
    found = _key_with_user(hash_api_key(reader_key.raw))
    expected = ApiKey.objects.select_related("user").get(pk=reader_key.key.pk)
    assert found is not None
    for model, got, want in ((ApiKey, found, expected), (User, found.user, expected.user)):
        for field in model._meta.concrete_fields:
            assert getattr(got, field.attname) == getattr(want, field.attname), field.attname
        assert not got.get_deferred_fields()
        assert got._state.adding is False
    assert found.user.username == "reader"
    assert _key_with_user(hash_api_key("sops_someone-elses")) is None


def test_key_is_stored_only_as_sha256(reader_key) -> None:
    key = ApiKey.objects.get(pk=reader_key.key.pk)
    assert key.key_hash == hash_api_key(reader_key.raw)
    assert reader_key.raw not in {key.key_hash, key.prefix, key.name}
    assert reader_key.raw.startswith(key.prefix)


# -- /api/keys --------------------------------------------------------------------------


def test_create_returns_the_key_once(client_for) -> None:
    client = client_for(Role.USER)
    response = client.post("/api/keys", {"name": "ci", "expires_days": 7}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("sops_")
    assert body["name"] == "ci"
    assert body["role"] == Role.USER
    assert body["is_active"] is True
    assert body["expires_at"] is not None
    # The new key works, and is never shown again.
    assert _bearer(body["key"]).get("/api/runs").status_code == 200
    listed = client.get("/api/keys").content.decode()
    detail = client.get(f"/api/keys/{body['id']}").content.decode()
    key_hash = hash_api_key(body["key"])
    for text in (listed, detail):
        assert body["key"] not in text
        assert key_hash not in text
        assert "key_hash" not in text


def test_list_shows_name_role_expiry_and_last_use(client_for) -> None:
    body = client_for(Role.READONLY).get("/api/keys").json()
    (row,) = body["results"]
    assert {"id", "name", "role", "prefix", "user", "expires_at", "last_used_at", "revoked_at"} <= set(row)
    assert row["last_used_at"] is not None  # this very request used it


def test_non_admins_see_only_their_own_keys(client_for) -> None:
    other = api_key_create(user=UserFactory(username="other", role=Role.USER), name="theirs")
    client = client_for(Role.USER)
    names = {row["name"] for row in client.get("/api/keys").json()["results"]}
    assert names == {"user-key"}
    assert client.get(f"/api/keys/{other.key.pk}").status_code == 404
    assert client.delete(f"/api/keys/{other.key.pk}").status_code == 404
    assert _bearer(other.raw).get("/api/runs").status_code == 200  # untouched


def test_admins_see_and_revoke_everyones_keys(client_for) -> None:
    other = api_key_create(user=UserFactory(username="other", role=Role.USER), name="theirs")
    client = client_for(Role.ADMIN)
    names = {row["name"] for row in client.get("/api/keys").json()["results"]}
    assert {"admin-key", "theirs"} <= names
    assert client.delete(f"/api/keys/{other.key.pk}").status_code == 200
    assert _bearer(other.raw).get("/api/runs").status_code == 401


def test_revoke_makes_the_key_unusable_and_keeps_it_listed(client_for) -> None:
    client = client_for(Role.USER)
    created = client.post("/api/keys", {"name": "temp"}, format="json").json()
    response = client.delete(f"/api/keys/{created['id']}")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["revoked_at"] is not None
    assert _bearer(created["key"]).get("/api/runs").status_code == 401
    rows = {row["name"]: row for row in client.get("/api/keys").json()["results"]}
    assert rows["temp"]["is_active"] is False


def test_revoking_own_key_locks_the_caller_out(reader_key) -> None:
    client = _bearer(reader_key.raw)
    assert client.delete(f"/api/keys/{reader_key.key.pk}").status_code == 200
    assert client.get("/api/runs").status_code == 401


def test_role_is_capped_at_the_users_role(client_for) -> None:
    response = client_for(Role.EXECUTOR).post("/api/keys", {"name": "x", "role": "admin"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == Role.EXECUTOR
    created = _bearer(response.json()["key"])
    assert created.delete("/api/runs", [], format="json").status_code == 403


def test_a_weak_key_cannot_mint_a_stronger_one() -> None:
    """A readonly key of an admin must not be a way to get an admin key."""
    admin = UserFactory(username="boss", role=Role.ADMIN)
    weak = api_key_create(user=admin, name="ro", role=Role.READONLY)
    client = _bearer(weak.raw)
    for wanted in ({"name": "up", "role": "admin"}, {"name": "default"}):
        response = client.post("/api/keys", wanted, format="json")
        assert response.status_code == 201
        assert response.json()["role"] == Role.READONLY


def test_weak_key_of_an_admin_sees_only_the_admins_own_keys() -> None:
    admin = UserFactory(username="boss", role=Role.ADMIN)
    api_key_create(user=UserFactory(username="other"), name="theirs")
    weak = api_key_create(user=admin, name="ro", role=Role.READONLY)
    names = {row["name"] for row in _bearer(weak.raw).get("/api/keys").json()["results"]}
    assert names == {"ro"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "role": "root"}, "role"),
        ({"name": "x", "expires_days": 0}, "expires_days"),
        ({"name": "x", "expires_days": "soon"}, "expires_days"),
        ({"name": "x", "key_hash": "0" * 64}, "key_hash"),
        ({"name": "x", "user": "admin"}, "user"),
    ],
)
def test_create_validation_errors_are_400_naming_the_field(client_for, body, field: str) -> None:
    response = client_for(Role.USER).post("/api/keys", body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "validation_error"
    assert field in payload["details"]
    assert payload["message"]


@pytest.mark.parametrize("body", [[], "x", 5, None])
def test_create_with_a_non_object_body_is_400(client_for, body) -> None:
    response = client_for(Role.USER).post("/api/keys", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_unknown_key_id_is_json_404(client_for) -> None:
    response = client_for(Role.ADMIN).get("/api/keys/999999")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# -- the admin site ------------------------------------------------------------------------------


@pytest.fixture
def admin_site_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True))
    return client


def test_admin_creates_a_key_and_shows_it_once(admin_site_client: Client) -> None:
    owner = UserFactory(username="owner", role=Role.EXECUTOR)
    response = admin_site_client.post(
        "/admin/core/apikey/add/",
        {"user": owner.pk, "name": "from-admin", "role": "admin", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    raws = [w.rstrip(",") for m in shown for w in m.split() if w.startswith("sops_")]
    assert len(raws) == 1
    key = ApiKey.objects.get(name="from-admin")
    assert key.key_hash == hash_api_key(raws[0])
    assert key.role == Role.EXECUTOR  # capped at the owner's role
    assert _bearer(raws[0]).get("/api/runs").status_code == 200


def test_admin_action_revokes_keys(admin_site_client: Client, reader_key) -> None:
    response = admin_site_client.post(
        "/admin/core/apikey/",
        {"action": "revoke_keys", "_selected_action": [reader_key.key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert _bearer(reader_key.raw).get("/api/runs").status_code == 401


def test_old_admin_links_to_accounts_redirect_to_core(admin_site_client):
    response = admin_site_client.get("/admin/scriptops/apikey/?o=1")
    assert response.status_code == 301
    assert response["Location"] == "/admin/core/apikey/?o=1"
