"""An install made before accounts moved from the project package to core upgrades in place.

Runs real ``manage.py migrate`` processes on a SQLite file of its own: the database is
first brought to the state such an install has (the accounts migration recorded under
the app label ``scriptops``, content types under it too, a user with an API key), then
migrated by the current code, which must keep every row and record core's migrations.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(data_dir: Path, *args: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SCRIPTOPS_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(SCRIPTOPS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="scriptops.settings")
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(240)
def test_an_install_from_before_core_keeps_its_accounts(tmp_path: Path) -> None:
    manage(tmp_path, "migrate", "--noinput", "-v0")
    manage(tmp_path, "create_api_key", "old-operator", "--role", "admin", "--name", "laptop")
    db = sqlite3.connect(tmp_path / "scriptops.sqlite3")
    with db:
        # What an install of the previous release holds: accounts under "scriptops".
        db.execute("DELETE FROM django_migrations WHERE app = 'core'")
        db.execute(
            "INSERT INTO django_migrations (app, name, applied)"
            " VALUES ('scriptops', '0001_initial', '2026-11-22')"
        )
        db.execute("UPDATE django_content_type SET app_label = 'scriptops' WHERE app_label = 'core'")
    db.close()

    out = manage(tmp_path, "migrate", "--noinput")
    assert "core.0001_initial" not in out  # recorded as applied, never run on existing tables

    db = sqlite3.connect(tmp_path / "scriptops.sqlite3")
    applied = {row[0] for row in db.execute("SELECT name FROM django_migrations WHERE app = 'core'")}
    assert applied == {"0001_initial", "0002_content_types_from_scriptops"}
    users = [row[0] for row in db.execute("SELECT username FROM scriptops_user")]
    assert users == ["old-operator"]
    keys = [row[0] for row in db.execute("SELECT name FROM scriptops_apikey")]
    assert keys == ["laptop"]
    labels = {
        row[0] for row in db.execute("SELECT app_label FROM django_content_type WHERE model = 'apikey'")
    }
    assert labels == {"core"}
    db.close()
