"""The script library: folder roots, their scans, the scripts found, tags, the audit trail.

Scan state flow (``Scan.state``), moved only by ``library.services.scanning``:

    queued ──claim──▶ running ──▶ completed
      │                  └──────▶ failed     (the root vanished, a bug, the worker died)
      └──────────────────────────▶ failed     (the root was deleted before it started)

At most one scan per root is ``queued`` or ``running`` (a partial unique constraint):
a second request joins the active scan instead of starting another.

A script's ``missing_since`` is set when a scan no longer finds its file and cleared
when the file comes back; scans delete scripts missing for longer than
``SCRIPTOPS_LIBRARY_MISSING_GRACE`` seconds.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

# Directory and file names never indexed unless a root's exclude list says otherwise.
DEFAULT_EXCLUDE_PATTERNS = [
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "node_modules",
    ".venv",
    "venv",
    "env",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
    "*.pyc",
]
# File names indexed by default: the script kinds ScriptOps knows.
DEFAULT_INCLUDE_PATTERNS = [
    "*.py",
    "*.sh",
    "*.bash",
    "*.zsh",
    "*.js",
    "*.mjs",
    "*.cjs",
    "*.ts",
    "*.rb",
    "*.pl",
    "*.pm",
    "*.ps1",
    "*.psm1",
    "*.sql",
    "*.php",
    "*.lua",
    "*.r",
    "*.R",
    "*.tcl",
    "*.awk",
    "*.bat",
    "*.cmd",
]


def default_include() -> list[str]:
    return list(DEFAULT_INCLUDE_PATTERNS)


def default_exclude() -> list[str]:
    return list(DEFAULT_EXCLUDE_PATTERNS)


class FolderRoot(models.Model):
    """A folder inside ``SCRIPTOPS_ALLOWED_ROOTS`` whose scripts the library indexes."""

    name = models.CharField(max_length=200, unique=True)
    path = models.CharField(max_length=4096, unique=True, help_text="Absolute, resolved (realpath).")
    include_patterns = models.JSONField(default=default_include, blank=True)
    exclude_patterns = models.JSONField(default=default_exclude, blank=True)
    recursive = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.path})"


class ScanState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


SCAN_ACTIVE = (ScanState.QUEUED, ScanState.RUNNING)


class Scan(models.Model):
    """One scan of a root: its state, counters, errors and timings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    root = models.ForeignKey(FolderRoot, on_delete=models.CASCADE, related_name="scans")
    state = models.CharField(max_length=10, choices=ScanState.choices, default=ScanState.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Progress: ``files_total`` is known once the walk is done; ``files_processed`` grows.
    phase = models.CharField(max_length=20, default="", blank=True)
    files_total = models.PositiveIntegerField(null=True, blank=True)
    files_processed = models.PositiveIntegerField(default=0)
    files_seen = models.PositiveIntegerField(default=0)
    files_added = models.PositiveIntegerField(default=0)
    files_updated = models.PositiveIntegerField(default=0)
    files_unchanged = models.PositiveIntegerField(default=0)
    files_missing = models.PositiveIntegerField(default=0, help_text="Newly marked missing.")
    files_removed = models.PositiveIntegerField(default=0, help_text="Deleted after the grace period.")
    files_skipped = models.PositiveIntegerField(default=0, help_text="Symlinks leaving the root.")
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first errors: {path, error}.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["root"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_active_scan_per_root",
            )
        ]

    def __str__(self) -> str:
        return f"scan {self.id} of {self.root_id} [{self.state}]"

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)


class ScriptStatus(models.TextChoices):
    ACTIVE = "active"
    DRAFT = "draft"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class Tag(models.Model):
    """A coloured label; names are unique whatever their case."""

    name = models.CharField(max_length=64)
    color = models.CharField(max_length=7, default="#6b7280", help_text="#rrggbb")
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="tag_name_unique_ci")]

    def __str__(self) -> str:
        return self.name


class Script(models.Model):
    """A script file found under a root, with what the scan read and what people curate.

    Scan-owned fields: path … parameters, ``missing_since``. Curated fields (status,
    owner, environment, notes, max_concurrent, tags) are never touched by scans and are
    audited (:class:`ScriptChange`).
    """

    root = models.ForeignKey(FolderRoot, on_delete=models.CASCADE, related_name="scripts")
    path = models.CharField(max_length=4096, help_text="Absolute path as found under the root.")
    relpath = models.CharField(max_length=4096, help_text="Relative to the root.")
    name = models.CharField(max_length=255, db_index=True)
    extension = models.CharField(max_length=16, blank=True)
    language = models.CharField(max_length=32, db_index=True)
    shebang = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)
    line_count = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    mtime = models.FloatField(default=0.0, help_text="Seconds since the epoch.")
    mtime_ns = models.BigIntegerField(default=0, help_text="Compared by rescans.")
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=list, blank=True, help_text="argparse arguments (Python).")
    is_binary = models.BooleanField(default=False)
    read_error = models.CharField(max_length=500, blank=True)
    parse_error = models.CharField(
        max_length=500, blank=True, help_text="Why the file does not parse (Python); empty if it does."
    )
    first_seen = models.DateTimeField(default=timezone.now)
    last_scanned_at = models.DateTimeField(default=timezone.now)
    missing_since = models.DateTimeField(null=True, blank=True, db_index=True)
    # -- curated --
    status = models.CharField(
        max_length=12, choices=ScriptStatus.choices, default=ScriptStatus.ACTIVE, db_index=True
    )
    owner = models.CharField(max_length=150, blank=True, db_index=True)
    environment = models.CharField(max_length=64, blank=True, db_index=True)
    notes = models.TextField(blank=True)
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="Runs at once across all workers; empty = unlimited."
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="scripts")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["relpath"]
        constraints = [models.UniqueConstraint(fields=["root", "path"], name="script_unique_path_in_root")]
        indexes = [
            models.Index(fields=["name", "size", "line_count"], name="script_dup_key"),
            # The orderings of the scripts list: the first page comes off an index
            # instead of sorting every row (50,000 scripts).
            models.Index(fields=["relpath"], name="script_relpath"),
            models.Index(fields=["size"], name="script_size"),
            models.Index(fields=["line_count"], name="script_line_count"),
            models.Index(fields=["mtime"], name="script_mtime"),
            models.Index(fields=["updated_at"], name="script_updated_at"),
        ]

    def __str__(self) -> str:
        return self.relpath

    @property
    def concurrency_key(self) -> str:
        return f"library.script:{self.pk}"


class ScriptChange(models.Model):
    """The audit trail of curated fields and tags: who changed what, when."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="changes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=20, help_text="update | tag_attached | tag_detached")
    changes = models.JSONField(default=dict, help_text="{field: [old, new]} or {tag: name}.")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.script_id} at {self.at:%Y-%m-%d %H:%M}"


class Preset(models.Model):
    """A named set of run options for a script (arguments, environment, timeout, log
    level, working directory, retries…), a person's own or shared by an admin
    (``owner`` None). Environment values are kept here and never shown again: the API
    masks them, and a launch with the preset applies them server-side."""

    script = models.ForeignKey(Script, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: shared with everyone (admins manage those).",
    )
    options = models.JSONField(default=dict, blank=True, help_text="Run request fields (PRESET_FIELDS).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                "script",
                "owner",
                Lower("name"),
                condition=Q(owner__isnull=False),
                name="preset_unique_per_owner",
            ),
            models.UniqueConstraint(
                "script", Lower("name"), condition=Q(owner__isnull=True), name="preset_unique_shared"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.script_id})"

    @property
    def shared(self) -> bool:
        return self.owner_id is None
