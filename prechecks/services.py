"""Running, caching and judging pre-run checks; accepting a finding as a risk.

The runs worker, the library's on-demand check and the scheduler call :func:`precheck_run`
before a script starts; it returns a :class:`CheckOutcome` saying what was found and
whether the run must be blocked. A result is reused while the script's content, the kinds
asked for, the tools' versions and (for dependency scanning) the requirement files and
the advisory source are unchanged: a launch of an unchanged script costs one indexed
look-up (two more when the result has findings: its findings and the accepted risks).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from audit.services import record
from core.errors import Forbidden, InvalidInput, NotFound
from core.models import User
from core.roles import Role
from prechecks import conf, tools
from prechecks.models import (
    AcceptedRisk,
    CheckFinding,
    CheckJob,
    CheckJobState,
    CheckResult,
    CheckStatus,
    LatestCheck,
    RunCheck,
)
from prechecks.policy import Policy

# Tool versions are read once a minute per process, not on every launch.
_VERSIONS_TTL = 60.0
_versions_memo: tuple[float, dict[str, str]] | None = None
_ADVISORY_SIGNATURE_MEMO: dict[str, tuple[float, str]] = {}


@dataclass(frozen=True)
class ReportedFinding:
    """A finding as callers see it: stored fields, plus whether it is an accepted risk and
    whether it blocks under the current policy."""

    tool: str
    rule_id: str
    severity: str
    confidence: str
    file: str
    line: int | None
    message: str
    kind: str
    fingerprint: str
    accepted: bool
    blocking: bool


@dataclass(frozen=True)
class CheckOutcome:
    """What a check found and whether the run must not start.

    ``blocked`` applies the policy (``SCRIPTOPS_PRECHECK_BLOCK``) to the findings that are
    not accepted risks, and to ``errors`` (tools that gave no answer) when the policy says
    ``error``. ``status`` is ``clean``, ``findings`` or ``error`` (never clean when a tool
    gave no answer). ``cached`` says no tool ran for this call."""

    result_id: int
    script_sha256: str
    kinds: tuple[str, ...]
    status: str
    blocked: bool
    cached: bool
    findings: tuple[ReportedFinding, ...]
    errors: tuple[tools.ToolError, ...]
    notes: tuple[str, ...]
    duration_ms: float

    @property
    def reason(self) -> str:
        """One line for a blocked run's record and events: what blocked it."""
        blocking = [f for f in self.findings if f.blocking]
        parts = []
        for kind, label in (("secret", "secret"), ("code", "code finding"), ("dependency", "dependency")):
            count = sum(1 for f in blocking if f.kind == kind)
            if count:
                parts.append(f"{count} {label}{'s' if count > 1 else ''}")
        if self.errors and (self.blocked and not blocking):
            parts.append(", ".join(e.message for e in self.errors))
        return "; ".join(parts) if parts else ("blocked" if self.blocked else "allowed")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data for a run's record and its events (no secret in it)."""
        return {
            "result_id": self.result_id,
            "script_sha256": self.script_sha256,
            "kinds": list(self.kinds),
            "status": self.status,
            "blocked": self.blocked,
            "cached": self.cached,
            "reason": self.reason,
            "findings": [asdict(f) for f in self.findings],
            "errors": [asdict(e) for e in self.errors],
            "notes": list(self.notes),
            "duration_ms": self.duration_ms,
        }


def _fingerprint_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"scriptops-precheck-fingerprint", "sha256").digest()


def _tool_versions() -> dict[str, str]:
    global _versions_memo
    now = time.monotonic()
    if _versions_memo is None or now - _versions_memo[0] > _VERSIONS_TTL:
        _versions_memo = (now, tools.tool_versions())
    return _versions_memo[1]


def _advisory_signature(folder: Path) -> str:
    now = time.monotonic()
    memo = _ADVISORY_SIGNATURE_MEMO.get(str(folder))
    if memo and now - memo[0] < tools.ADVISORY_RECHECK_SECONDS:
        return memo[1]
    signature = tools.advisory_signature(folder) if folder.is_dir() else "missing"
    _ADVISORY_SIGNATURE_MEMO[str(folder)] = (now, signature)
    return signature


def _dependency_inputs(path: Path, root: Path | None) -> list[str]:
    """What a dependency result depends on besides the script: the requirement files'
    contents and the advisory sources."""
    parts = []
    for file in tools.dependency_files(path, root):
        try:
            parts.append(f"{file}:{hashlib.sha256(file.read_bytes()).hexdigest()}")
        except OSError:
            parts.append(f"{file}:unreadable")
    folder = conf.advisory_dir()
    parts.append(f"advisories:{folder}:{_advisory_signature(folder) if folder else '-'}")
    parts.append(f"osv:{conf.osv_url() or '-'}")
    return parts


def _cache_key(
    sha256: str, kinds: tuple[str, ...], path: Path, root: Path | None
) -> tuple[str, dict[str, str]]:
    versions = _tool_versions()
    parts = [sha256, ",".join(kinds), *(f"{k}={v}" for k, v in sorted(versions.items()))]
    # The fingerprints stored with a result are keyed: a new SECRET_KEY makes new ones.
    parts.append(hashlib.sha256(_fingerprint_key()).hexdigest()[:16])
    if "dependency" in kinds:
        parts += _dependency_inputs(path, root)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest(), versions


def _reusable(result: CheckResult, key: str, kinds: tuple[str, ...]) -> bool:
    if result.cache_key != key or result.status == CheckStatus.ERROR:
        return False
    return "dependency" not in kinds or result.created_at >= timezone.now() - timedelta(
        seconds=conf.cache_ttl()
    )


def _display_name(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return path.name


def _run_tools(path: Path, kinds: tuple[str, ...], root: Path | None) -> tools.ToolReport:
    timeout = conf.timeout()
    display = _display_name(path, root)
    jobs = []
    # Each tool is a child process: run them side by side, a cold check takes the slowest.
    with ThreadPoolExecutor(max_workers=len(kinds), thread_name_prefix="precheck") as pool:
        if "code" in kinds:
            jobs.append(pool.submit(tools.code_analyse, path, timeout=timeout, display=display))
        if "secret" in kinds:
            jobs.append(pool.submit(tools.secrets_scan, path, timeout=timeout, display=display))
        if "dependency" in kinds:
            jobs.append(
                pool.submit(
                    tools.dependencies_scan,
                    path,
                    root=root,
                    advisory_dir=conf.advisory_dir(),
                    osv_url=conf.osv_url(),
                    timeout=timeout,
                )
            )
        report = tools.ToolReport()
        for job in jobs:
            report += job.result()
    return report


def _store(
    *,
    path: Path,
    sha256: str,
    key: str,
    kinds: tuple[str, ...],
    versions: dict[str, str],
    report: tools.ToolReport,
    started: float,
    created_at: Any,
) -> CheckResult:
    status = (
        CheckStatus.ERROR if report.errors else CheckStatus.FINDINGS if report.findings else CheckStatus.CLEAN
    )
    fp_key = _fingerprint_key()
    with transaction.atomic():
        result = CheckResult.objects.create(
            cache_key=key,
            script_sha256=sha256,
            script_path=str(path),
            kinds=",".join(kinds),
            tool_versions=versions,
            status=status,
            errors=[asdict(e) for e in report.errors],
            notes=list(report.notes),
            created_at=created_at,
            finished_at=timezone.now(),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        CheckFinding.objects.bulk_create(
            CheckFinding(
                result=result,
                tool=f.tool,
                rule_id=f.rule_id[:128],
                severity=f.severity,
                confidence=f.confidence[:16],
                file=f.file[:4096],
                line=f.line,
                message=f.message,
                kind=f.kind,
                fingerprint=f.fingerprint(fp_key),
            )
            for f in report.findings
        )
    return result


def _point_latest(path: str, result: CheckResult) -> None:
    LatestCheck.objects.update_or_create(
        script_path=path, defaults={"result": result, "checked_at": timezone.now()}
    )


def _outcome(
    *, result: CheckResult, kinds: tuple[str, ...], cached: bool, path: str, policy: Policy
) -> CheckOutcome:
    rows: list[CheckFinding] = [] if result.status == CheckStatus.CLEAN else list(result.findings.all())
    fingerprints = {row.fingerprint for row in rows}
    accepted: set[str] = set()
    if fingerprints:
        accepted = set(
            AcceptedRisk.objects.filter(fingerprint__in=fingerprints)
            .filter(Q(script_path=path) | Q(script_sha256=result.script_sha256))
            .values_list("fingerprint", flat=True)
        )
    findings = []
    for row in rows:
        finding = tools.Finding(
            tool=row.tool,
            rule_id=row.rule_id,
            severity=row.severity,  # type: ignore[arg-type]  # stored from a Severity
            confidence=row.confidence,
            file=row.file,
            line=row.line,
            message=row.message,
            kind=row.kind,  # type: ignore[arg-type]  # stored from a Kind
        )
        is_accepted = row.fingerprint in accepted
        findings.append(
            ReportedFinding(
                tool=row.tool,
                rule_id=row.rule_id,
                severity=row.severity,
                confidence=row.confidence,
                file=row.file,
                line=row.line,
                message=row.message,
                kind=row.kind,
                fingerprint=row.fingerprint,
                accepted=is_accepted,
                blocking=not is_accepted and policy.blocks(finding),
            )
        )
    errors = tuple(tools.ToolError(str(e.get("tool", "")), str(e.get("message", ""))) for e in result.errors)
    blocked = any(f.blocking for f in findings) or (policy.error and bool(errors))
    return CheckOutcome(
        result_id=result.pk,
        script_sha256=result.script_sha256,
        kinds=kinds,
        status=result.status,
        blocked=blocked,
        cached=cached,
        findings=tuple(findings),
        errors=errors,
        notes=tuple(str(n) for n in result.notes),
        duration_ms=result.duration_ms,
    )


def precheck_run(*, path: Path, kinds: frozenset[str], root: Path | None = None) -> CheckOutcome:
    """Check the script at ``path`` (absolute, resolved) for ``kinds`` (``code``, ``secret``,
    ``dependency``), reusing a cached result when nothing it depends on changed.

    ``root`` is the library root the script lies in (its requirement files are scanned
    too, and findings name files relative to it). Each tool has ``SCRIPTOPS_PRECHECK_TIMEOUT``
    seconds; a tool that gives no answer is reported in ``errors``, never taken as clean.
    Raises :class:`~core.errors.InvalidInput` for unknown kinds and
    :class:`~core.errors.NotFound` when the file cannot be read.
    """
    unknown = set(kinds) - tools.KINDS
    if unknown or not kinds:
        raise InvalidInput("kinds", f"expected some of code, secret, dependency; got {sorted(kinds)}")
    ordered = tuple(sorted(kinds))
    policy = conf.block_policy()
    started = time.perf_counter()
    created_at = timezone.now()
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror or exc}") from exc
    sha256 = hashlib.sha256(content).hexdigest()
    key, versions = _cache_key(sha256, ordered, path, root)
    path_text = str(path)

    # The usual launch: this path's latest check is still valid — one indexed look-up.
    latest = LatestCheck.objects.select_related("result").filter(script_path=path_text).first()
    if latest is not None and _reusable(latest.result, key, ordered):
        return _outcome(result=latest.result, kinds=ordered, cached=True, path=path_text, policy=policy)

    # The same content checked elsewhere (another path, an upload) or before another check.
    result = (
        CheckResult.objects.filter(cache_key=key)
        .exclude(status=CheckStatus.ERROR)
        .order_by("-created_at")
        .first()
    )
    cached = result is not None and _reusable(result, key, ordered)
    if result is None or not cached:
        report = _run_tools(path, ordered, root)
        result = _store(
            path=path,
            sha256=sha256,
            key=key,
            kinds=ordered,
            versions=versions,
            report=report,
            started=started,
            created_at=created_at,
        )
    _point_latest(path_text, result)
    return _outcome(result=result, kinds=ordered, cached=cached, path=path_text, policy=policy)


def finding_accept(
    *, fingerprint: str, by: User, reason: str, script_path: str = "", script_sha256: str = ""
) -> AcceptedRisk:
    """Accept a finding as a risk for one script path or one content (SHA-256): it is still
    reported but no longer blocks. Admins only. Accepting it again updates who and why."""
    if by.effective_role != Role.ADMIN:
        raise Forbidden("Only admins may accept a finding as a risk.")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason", "Say why this risk is accepted.", "required")
    if not script_path and not script_sha256:
        raise InvalidInput(
            "script_path", "Name the script path or the SHA-256 the risk is accepted for.", "required"
        )
    if script_sha256 and (
        len(script_sha256) != 64 or not all(c in "0123456789abcdef" for c in script_sha256)
    ):
        raise InvalidInput("script_sha256", "Expected 64 lowercase hexadecimal digits.")
    if not CheckFinding.objects.filter(fingerprint=fingerprint).exists():
        raise NotFound("No finding has this fingerprint.")
    risk, _ = AcceptedRisk.objects.update_or_create(
        fingerprint=fingerprint,
        script_path=script_path,
        script_sha256=script_sha256,
        defaults={"accepted_by": by, "reason": reason, "accepted_at": timezone.now()},
    )
    record(
        action="precheck.risk_accept",
        object_type="finding",
        object_id=fingerprint,
        summary=f"accepted a pre-check finding as a risk for {script_path or script_sha256[:12]}",
        data={"script_path": script_path, "script_sha256": script_sha256, "reason": reason},
        actor=by,
    )
    return risk


def precheck_for_run(
    *, run_id: str, path: Path, kinds: frozenset[str], root: Path | None = None
) -> dict[str, Any]:
    """The pre-run check of a run about to start: :func:`precheck_run`, recorded with the
    run (a :class:`~prechecks.models.RunCheck`). Returns the outcome as plain data.

    Never raises for a check that could not be made (unreadable file, a tool's crash): that
    is a tool error, blocking when the policy says ``error`` (the default) — never clean."""
    try:
        outcome = precheck_run(path=path, kinds=kinds, root=root).as_dict()
        result_id: int | None = outcome["result_id"]
    except Exception as exc:  # noqa: BLE001 - reported as a tool error, never taken as clean
        message = f"the check could not be made: {exc.__class__.__name__}"
        blocked = conf.block_policy().error
        result_id = None
        outcome = {
            "result_id": None,
            "script_sha256": "",
            "kinds": sorted(kinds),
            "status": CheckStatus.ERROR.value,
            "blocked": blocked,
            "cached": False,
            "reason": message if blocked else "allowed",
            "findings": [],
            "errors": [{"tool": "precheck", "message": message}],
            "notes": [],
            "duration_ms": 0.0,
        }
    RunCheck.objects.update_or_create(
        run_id=run_id,
        defaults={"result_id": result_id, "blocked": outcome["blocked"], "outcome": outcome},
    )
    return outcome


def check_job_start(
    *, targets: list[tuple[Path, Path | None]], kinds: frozenset[str], by: User | None = None
) -> CheckJob:
    """Queue an on-demand check of ``targets`` (``(path, root)``, inside the roots: the
    caller's check) for ``kinds``; a django-q2 task runs it after the commit."""
    unknown = set(kinds) - tools.KINDS
    if unknown or not kinds:
        raise InvalidInput("kinds", f"expected some of code, secret, dependency; got {sorted(kinds)}")
    job = CheckJob.objects.create(
        targets=[[str(path), str(root) if root else ""] for path, root in targets],
        kinds=",".join(sorted(kinds)),
        total=len(targets),
        created_by=by,
    )
    job_id = str(job.pk)
    # The worker starts only once the job is committed (it loads it by id).
    transaction.on_commit(
        lambda: async_task("prechecks.tasks.check_job", job_id, task_name=f"check {job_id}"[:100], hook=None)
    )
    return job


def check_job_execute(*, job_id: str) -> str | None:
    """Run a queued :class:`CheckJob`, counting as it goes. None if another worker took it."""
    claimed = CheckJob.objects.filter(pk=job_id, state=CheckJobState.QUEUED).update(
        state=CheckJobState.RUNNING
    )
    if claimed != 1:
        return None
    job = CheckJob.objects.get(pk=job_id)
    kinds = frozenset(job.kinds.split(","))
    try:
        for path, root in job.targets:
            try:
                outcome = precheck_run(path=Path(path), kinds=kinds, root=Path(root) if root else None)
            except NotFound:
                CheckJob.objects.filter(pk=job_id).update(checked=F("checked") + 1, errors=F("errors") + 1)
                continue
            CheckJob.objects.filter(pk=job_id).update(
                checked=F("checked") + 1,
                with_findings=F("with_findings") + (1 if outcome.findings else 0),
                blocked=F("blocked") + (1 if outcome.blocked else 0),
                errors=F("errors") + (1 if outcome.errors else 0),
            )
            job.result_ids.append(outcome.result_id)
    except Exception as exc:
        CheckJob.objects.filter(pk=job_id).update(
            state=CheckJobState.FAILED, message=str(exc)[:500], finished_at=timezone.now()
        )
        raise
    CheckJob.objects.filter(pk=job_id).update(
        state=CheckJobState.DONE, result_ids=job.result_ids, finished_at=timezone.now()
    )
    return CheckJobState.DONE
