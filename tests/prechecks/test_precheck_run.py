"""precheck_run: stored results, the policy, the cache, accepted risks, the latest check."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from core.errors import Forbidden, InvalidInput, NotFound
from core.roles import Role
from prechecks.models import AcceptedRisk, CheckFinding, CheckResult, LatestCheck
from prechecks.selectors import check_badges, check_latest, checks_latest
from prechecks.services import finding_accept, precheck_run
from tests.factories import UserFactory
from tests.prechecks.conftest import AWS_KEY, PRIVATE_KEY_BODY

pytestmark = pytest.mark.django_db
ALL = frozenset({"code", "secret", "dependency"})


@pytest.fixture
def risky(write):
    return write("deploy.py", "import subprocess\nsubprocess.call(input(), shell=True)\neval(input())\n")


def _no_tool_may_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a tool ran: {args[0]!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_a_high_code_finding_blocks_under_the_default_policy(risky):
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert (outcome.status, outcome.blocked, outcome.cached) == ("findings", True, False)
    blocking = [f.rule_id for f in outcome.findings if f.blocking]
    assert blocking == ["B602"]  # eval is medium: reported, not blocking
    assert "code finding" in outcome.reason
    stored = CheckResult.objects.get(pk=outcome.result_id)
    assert stored.findings.count() == len(outcome.findings) == 3
    assert stored.duration_ms > 0


def test_a_clean_script_is_allowed(write):
    outcome = precheck_run(path=write("ok.sh", 'echo "hi"\n'), kinds=ALL, root=None)
    assert (outcome.status, outcome.blocked, outcome.findings) == ("clean", False, ())
    assert outcome.notes  # no requirements file: said, not an error


def test_the_second_check_of_an_unchanged_script_runs_no_tool(risky, monkeypatch):
    first = precheck_run(path=risky, kinds=frozenset({"code", "secret"}), root=None)
    _no_tool_may_run(monkeypatch)
    second = precheck_run(path=risky, kinds=frozenset({"secret", "code"}), root=None)
    assert second.cached and not first.cached
    assert second.result_id == first.result_id
    assert second.findings == first.findings and second.blocked
    assert CheckResult.objects.count() == 1


def test_the_same_content_at_another_path_reuses_the_result(risky, write, monkeypatch):
    first = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    copy = write("copy.py", risky.read_text())
    _no_tool_may_run(monkeypatch)
    again = precheck_run(path=copy, kinds=frozenset({"code"}), root=None)
    assert again.cached and again.result_id == first.result_id
    assert check_latest(path=str(copy)).pk == first.result_id


def test_a_changed_script_or_other_kinds_are_checked_again(risky):
    first = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert not precheck_run(path=risky, kinds=frozenset({"code", "secret"}), root=None).cached
    risky.write_text("print('fixed')\n")
    fixed = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert not fixed.cached and fixed.result_id != first.result_id
    assert (fixed.status, fixed.blocked) == ("clean", False)
    assert check_latest(path=str(risky)).pk == fixed.result_id


def test_a_tool_timeout_is_reported_blocks_and_is_not_reused(risky, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_TIMEOUT", "0.001")
    timed_out = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert (timed_out.status, timed_out.blocked) == ("error", True)
    assert [e.tool for e in timed_out.errors] == ["bandit"]
    assert "timed out" in timed_out.reason
    monkeypatch.delenv("SCRIPTOPS_PRECHECK_TIMEOUT")
    retried = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert not retried.cached and retried.status == "findings"


def test_an_error_does_not_block_when_the_policy_leaves_errors_out(risky, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_TIMEOUT", "0.001")
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_BLOCK", "secret")
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert (outcome.status, outcome.blocked) == ("error", False)


def test_the_policy_is_applied_when_read_not_when_stored(risky, monkeypatch):
    precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_BLOCK", "none")
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert outcome.cached and not outcome.blocked


def test_the_secret_text_appears_in_no_stored_or_returned_field(secret_script):
    outcome = precheck_run(path=secret_script, kinds=ALL, root=None)
    assert outcome.blocked
    assert {"AWSAccessKey", "PrivateKey"} <= {f.rule_id for f in outcome.findings if f.kind == "secret"}
    dumped = json.dumps(outcome.as_dict())
    stored = json.dumps(
        [
            list(CheckResult.objects.values()),
            list(CheckFinding.objects.values()),
            list(LatestCheck.objects.values()),
        ],
        default=str,
    )
    for text in (dumped, stored):
        assert AWS_KEY not in text
        assert PRIVATE_KEY_BODY[:16] not in text


def test_dependency_results_follow_the_requirements_and_the_advisories(write, advisory_dir, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_ADVISORY_DIR", str(advisory_dir))
    script = write("job.py", "print(1)\n")
    requirements = write("requirements.txt", "examplepkg==2.0.1\n")
    assert not precheck_run(path=script, kinds=frozenset({"dependency"}), root=None).blocked
    requirements.write_text("examplepkg==2.0.0\n")
    outcome = precheck_run(path=script, kinds=frozenset({"dependency"}), root=None)
    assert not outcome.cached and outcome.blocked
    assert [f.rule_id for f in outcome.findings] == ["PYSEC-2099-1"]


def test_a_dependency_result_expires_after_the_cache_ttl(write, advisory_dir, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_ADVISORY_DIR", str(advisory_dir))
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_CACHE_TTL", "3600")
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    precheck_run(path=script, kinds=frozenset({"dependency"}), root=None)
    assert precheck_run(path=script, kinds=frozenset({"dependency"}), root=None).cached
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert not precheck_run(path=script, kinds=frozenset({"dependency"}), root=None).cached


def test_the_osv_api_is_used_when_configured(write, osv_api, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_OSV_URL", osv_api)
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    outcome = precheck_run(path=script, kinds=frozenset({"dependency"}), root=None)
    assert [(f.tool, f.rule_id, f.blocking) for f in outcome.findings] == [("osv-api", "PYSEC-2099-1", True)]


def test_an_accepted_risk_no_longer_blocks_but_is_still_reported(risky):
    admin = UserFactory(role=Role.ADMIN)
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    [blocking] = [f for f in outcome.findings if f.blocking]
    risk = finding_accept(
        fingerprint=blocking.fingerprint, by=admin, reason="input is a fixed menu", script_path=str(risky)
    )
    assert (risk.accepted_by, risk.reason) == (admin, "input is a fixed menu")
    [event] = AuditEvent.objects.filter(action="precheck.risk_accept")  # audited, with who and why
    assert (event.actor_id, event.object_id, event.data["reason"]) == (
        admin.pk,
        blocking.fingerprint,
        risk.reason,
    )
    again = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert not again.blocked
    [accepted] = [f for f in again.findings if f.rule_id == "B602"]
    assert accepted.accepted and not accepted.blocking


def test_a_risk_accepted_for_a_content_follows_it_and_survives_moved_lines(risky):
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    [blocking] = [f for f in outcome.findings if f.blocking]
    finding_accept(
        fingerprint=blocking.fingerprint,
        by=UserFactory(role=Role.USER, is_superuser=True),
        reason="reviewed",
        script_sha256=outcome.script_sha256,
    )
    assert not precheck_run(path=risky, kinds=frozenset({"code"}), root=None).blocked
    risky.write_text("# a comment moves every line\n" + risky.read_text())
    moved = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    assert moved.blocked  # another content: the acceptance was for the reviewed one
    assert blocking.fingerprint in {f.fingerprint for f in moved.findings}  # same finding, moved


def test_only_admins_accept_risks_with_a_reason_for_a_known_finding(risky):
    outcome = precheck_run(path=risky, kinds=frozenset({"code"}), root=None)
    fingerprint = outcome.findings[0].fingerprint
    admin = UserFactory(username="boss", role=Role.ADMIN)
    with pytest.raises(Forbidden):
        finding_accept(fingerprint=fingerprint, by=UserFactory(role=Role.USER), reason="x", script_path="/a")
    with pytest.raises(InvalidInput) as caught:
        finding_accept(fingerprint=fingerprint, by=admin, reason="  ", script_path="/a")
    assert caught.value.field == "reason"
    with pytest.raises(InvalidInput) as caught:
        finding_accept(fingerprint=fingerprint, by=admin, reason="ok")
    assert caught.value.field == "script_path"
    with pytest.raises(NotFound):
        finding_accept(fingerprint="0" * 64, by=admin, reason="ok", script_path="/a")
    assert not AcceptedRisk.objects.exists()


def test_unknown_kinds_and_missing_files_are_refused(risky, tmp_path):
    with pytest.raises(InvalidInput) as caught:
        precheck_run(path=risky, kinds=frozenset({"virus"}), root=None)
    assert caught.value.field == "kinds"
    with pytest.raises(InvalidInput):
        precheck_run(path=risky, kinds=frozenset(), root=None)
    with pytest.raises(NotFound):
        precheck_run(path=tmp_path / "gone.py", kinds=frozenset({"code"}), root=None)


def test_findings_name_files_relative_to_the_root(write, tmp_path):
    script = write("team/deploy.py", "import os\nos.system(input())\n")
    outcome = precheck_run(path=script, kinds=frozenset({"code"}), root=tmp_path / "scripts")
    assert {f.file for f in outcome.findings} == {"team/deploy.py"}


def test_badges_for_the_library(risky, secret_script, write, monkeypatch):
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_TIMEOUT", "60")
    clean = write("ok.py", "print(1)\n")
    for path in (risky, secret_script, clean):
        precheck_run(path=path, kinds=ALL, root=None)
    latest = checks_latest(paths=[str(risky), str(secret_script), str(clean), "/never/checked.py"])
    assert set(latest) == {str(risky), str(secret_script), str(clean)}
    badges = check_badges(results=latest.values())
    assert badges[latest[str(risky)].pk] == "1 high"
    assert badges[latest[str(secret_script)].pk] == "secret found"
    assert badges[latest[str(clean)].pk] == "clean"
