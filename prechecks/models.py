"""Pre-check results, their findings, the latest check of each script path, and accepted risks.

A :class:`CheckResult` is the result of checking one content (SHA-256) for some kinds with some
tool versions; ``cache_key`` says exactly that, so a launch of an unchanged script reuses
it with one indexed look-up. Results with a tool error are kept (for the record and the
latest-check badge) but never reused: the next launch tries again.

Status (``CheckResult.status``), set once when the check finishes:

    clean      every tool answered and found nothing
    findings   every tool answered, something was found
    error      at least one tool gave no answer (missing, crashed, timed out) — never clean,
               whatever the other tools found (``findings`` are kept all the same)

Whether a result *blocks* is not stored: it depends on the policy and on accepted risks,
both of which may change after the check (:func:`prechecks.services.precheck_run`).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class CheckStatus(models.TextChoices):
    CLEAN = "clean", "Clean"
    FINDINGS = "findings", "Findings"
    ERROR = "error", "Error"


class FindingKind(models.TextChoices):
    CODE = "code", "Code analysis"
    SECRET = "secret", "Secret"
    DEPENDENCY = "dependency", "Dependency"


class FindingSeverity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class CheckResult(models.Model):
    """One check of one script content. ``script_path`` is where it was first checked
    from (the same content elsewhere reuses the row)."""

    cache_key = models.CharField(
        max_length=64, help_text="SHA-256 of content, kinds, tool versions and dependency inputs."
    )
    script_sha256 = models.CharField(max_length=64, db_index=True)
    script_path = models.CharField(max_length=4096)
    kinds = models.CharField(max_length=64, help_text="Comma-separated, sorted: code, dependency, secret.")
    tool_versions = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=CheckStatus.choices)
    errors = models.JSONField(default=list, help_text="[{tool, message}] of tools that gave no answer.")
    notes = models.JSONField(default=list, help_text="Tools that had nothing to look at.")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["cache_key", "-created_at"], name="precheck_cache_idx")]

    def __str__(self) -> str:
        return f"{self.script_path} [{self.kinds}] {self.status}"


class CheckFinding(models.Model):
    """One finding of a check. ``message`` never holds a secret (masked by the tools);
    ``fingerprint`` is a keyed hash naming the finding for accepted risks."""

    result = models.ForeignKey(CheckResult, on_delete=models.CASCADE, related_name="findings")
    tool = models.CharField(max_length=32)
    rule_id = models.CharField(max_length=128)
    severity = models.CharField(max_length=16, choices=FindingSeverity.choices)
    confidence = models.CharField(max_length=16)
    file = models.CharField(max_length=4096)
    line = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField()
    kind = models.CharField(max_length=16, choices=FindingKind.choices)
    fingerprint = models.CharField(max_length=64, db_index=True)

    class Meta:
        ordering = ["result", "kind", "file", "line", "pk"]

    def __str__(self) -> str:
        return f"{self.tool} {self.rule_id} {self.file}:{self.line or '-'}"


class LatestCheck(models.Model):
    """The latest check of a script path (the library's badge), moved by each check of that
    path, cached or not. A launch whose latest check is still valid writes nothing."""

    script_path = models.CharField(max_length=4096, unique=True)
    result = models.ForeignKey(CheckResult, on_delete=models.CASCADE, related_name="+")
    checked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.script_path


class AcceptedRisk(models.Model):
    """An admin's decision that a finding (by fingerprint) no longer blocks, for one script
    path or for one content (SHA-256) wherever it lies. The finding is still reported."""

    fingerprint = models.CharField(max_length=64, db_index=True)
    script_path = models.CharField(max_length=4096, blank=True, default="")
    script_sha256 = models.CharField(max_length=64, blank=True, default="")
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(script_path="", script_sha256=""),
                name="precheck_risk_has_scope",
                violation_error_message="An accepted risk names a script path or a SHA-256.",
            ),
            models.UniqueConstraint(
                fields=["fingerprint", "script_path", "script_sha256"], name="precheck_risk_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint[:12]} on {self.script_path or self.script_sha256[:12]}"


class RunCheck(models.Model):
    """The pre-run check of one run: which result it used and what the worker decided.

    ``run_id`` names a ``runs.Run`` by id only (prechecks sits below runs in the layers and
    never imports it); the row goes when the run does (``runs_delete``). ``outcome`` is the
    :meth:`~prechecks.services.CheckOutcome.as_dict` seen at launch (accepted risks and the
    policy as they were then); no secret in it — the tools mask them."""

    run_id = models.UUIDField(unique=True)
    result = models.ForeignKey(
        CheckResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="run_checks"
    )
    blocked = models.BooleanField(default=False)
    outcome = models.JSONField(default=dict)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"run {self.run_id} {'blocked' if self.blocked else 'allowed'}"


class CheckJobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class CheckJob(models.Model):
    """An on-demand check of one or more scripts (the library's ``check`` action), run by a
    django-q2 task. Pollable like a library scan: ``state`` moves queued → running → done
    (or failed), ``checked`` counts the scripts done so far out of ``total``.

    ``targets`` is ``[[path, root or ""], ...]``: plain paths, checked inside the roots by
    the caller (the library) before the job is made."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    targets = models.JSONField(default=list)
    kinds = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=CheckJobState.choices, default=CheckJobState.QUEUED)
    total = models.PositiveIntegerField(default=0)
    checked = models.PositiveIntegerField(default=0)
    with_findings = models.PositiveIntegerField(default=0)
    blocked = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    result_ids = models.JSONField(default=list)
    message = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"check {self.id} [{self.state}] {self.checked}/{self.total}"
