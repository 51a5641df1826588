"""The admin of runs: run pages are views (no Save) with durations as durations; uploaded
scripts' database copies are listed read-only, without their content."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from runs.models import Run, RunAttempt, RunStatus, UploadedScript
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


def test_the_admin_is_branded_and_a_run_page_is_a_view_without_save(admin_site: Client) -> None:
    run = Run.objects.create(
        script_path="/srv/scripts/job.py",
        status=RunStatus.COMPLETED,
        duration=192.4,
        cpu_time=0.25,
        peak_rss=40 * 1024 * 1024,
    )
    RunAttempt.objects.create(run=run, number=1, duration=3725.0, started_at=timezone.now())

    index = admin_site.get("/admin/")
    assert "ScriptOps administration" in index.content.decode()

    page = admin_site.get(f"/admin/runs/run/{run.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="_save"' not in body and 'name="_continue"' not in body
    assert "3 min 12 s" in body  # the run's duration
    assert "1 h 2 min" in body  # its attempt's
    assert "250 ms" in body and "40.0 MiB" in body
    assert "192.4" not in body

    listing = admin_site.get("/admin/runs/run/")
    assert "3 min 12 s" in listing.content.decode()

    # Read-only means read-only: a forged POST changes nothing.
    admin_site.post(f"/admin/runs/run/{run.pk}/change/", {"script_path": "/etc/passwd"})
    run.refresh_from_db()
    assert run.script_path == "/srv/scripts/job.py"
