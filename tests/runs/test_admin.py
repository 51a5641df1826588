"""The admin of runs: uploaded scripts' database copies are listed read-only, without
their content."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.test import Client

from runs.models import UploadedScript
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = b"TOKEN='do-not-show-me'\n"


@pytest.fixture
def admin_site() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True, role="admin"))
    return client


@pytest.fixture
def uploaded() -> UploadedScript:
    upload_id = uuid.uuid4()
    return UploadedScript.objects.create(
        id=upload_id,
        name="job.py",
        path=f"/srv/data/uploads/{upload_id.hex}/job.py",
        content=SECRET,
        sha256=hashlib.sha256(SECRET).hexdigest(),
    )


def test_uploaded_scripts_are_listed_with_their_size_and_checksum_not_their_content(
    admin_site: Client, uploaded: UploadedScript
) -> None:
    page = admin_site.get("/admin/runs/uploadedscript/")
    assert page.status_code == 200
    html = page.content.decode()
    for shown in (uploaded.path, uploaded.sha256, f">{len(SECRET)}<"):
        assert shown in html
    assert "size (bytes)" in html.lower()
    assert "do-not-show-me" not in html

    detail = admin_site.get(f"/admin/runs/uploadedscript/{uploaded.pk}/change/")
    assert detail.status_code == 200
    assert uploaded.sha256 in detail.content.decode()
    assert "do-not-show-me" not in detail.content.decode()


def test_uploaded_scripts_cannot_be_added_changed_or_deleted_in_the_admin(
    admin_site: Client, uploaded: UploadedScript
) -> None:
    assert admin_site.get("/admin/runs/uploadedscript/add/").status_code == 403
    change = admin_site.post(
        f"/admin/runs/uploadedscript/{uploaded.pk}/change/", {"name": "evil.py", "path": "/etc/x"}
    )
    assert change.status_code == 403
    assert (
        admin_site.post(f"/admin/runs/uploadedscript/{uploaded.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    uploaded.refresh_from_db()
    assert (uploaded.name, bytes(uploaded.content)) == ("job.py", SECRET)
