"""The admin: findings read-only, accepted risks editable by admins only."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from core.roles import Role
from prechecks.models import AcceptedRisk, CheckFinding, CheckResult
from prechecks.services import precheck_run
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_findings_and_results_are_read_only_even_for_superusers():
    request = _request(UserFactory(role=Role.ADMIN, is_superuser=True, is_staff=True))
    for model in (CheckResult, CheckFinding):
        admin = site._registry[model]
        assert not admin.has_add_permission(request)
        assert not admin.has_change_permission(request)
        assert not admin.has_delete_permission(request)


def test_accepted_risks_are_editable_by_admins_only():
    admin = site._registry[AcceptedRisk]
    boss = _request(UserFactory(username="boss", role=Role.ADMIN, is_staff=True))
    staff = _request(UserFactory(username="staff", role=Role.USER, is_staff=True))
    assert admin.has_add_permission(boss) and admin.has_change_permission(boss)
    assert admin.has_delete_permission(boss)
    assert not admin.has_add_permission(staff)
    assert not admin.has_change_permission(staff)
    assert not admin.has_delete_permission(staff)


def test_the_finding_page_shows_a_masked_finding(client, write):
    script = write("pw.py", 'password = "Tr0ub4dor-and-3"\n')
    outcome = precheck_run(path=script, kinds=frozenset({"code", "secret"}), root=None)
    client.force_login(UserFactory(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True))
    result_page = client.get(f"/admin/prechecks/checkresult/{outcome.result_id}/change/")
    listing = client.get("/admin/prechecks/checkfinding/")
    assert result_page.status_code == listing.status_code == 200
    for page in (result_page, listing):
        assert b"B105" in page.content
        assert b"Tr0ub4dor" not in page.content


def test_saving_an_accepted_risk_records_who(client):
    boss = UserFactory(username="root", role=Role.ADMIN, is_superuser=True, is_staff=True)
    client.force_login(boss)
    response = client.post(
        "/admin/prechecks/acceptedrisk/add/",
        {"fingerprint": "a" * 64, "script_path": "/srv/x.py", "script_sha256": "", "reason": "reviewed"},
    )
    assert response.status_code == 302
    assert AcceptedRisk.objects.get().accepted_by == boss
