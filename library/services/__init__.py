"""Library services: every write to the library goes through here (see CONVENTIONS.md)."""

from library.services.roots import LibraryError, root_create, root_delete, root_path_check, root_update
from library.services.scans import scan_execute, scan_start, scans_fail_stale
from library.services.scripts import (
    script_enqueue,
    script_run_check,
    script_run_params,
    script_tag_attach,
    script_tag_detach,
    script_update,
    tag_create,
    tag_delete,
    tag_update,
)

__all__ = [
    "LibraryError",
    "root_create",
    "root_delete",
    "root_path_check",
    "root_update",
    "scan_execute",
    "scan_start",
    "scans_fail_stale",
    "script_enqueue",
    "script_run_check",
    "script_run_params",
    "script_tag_attach",
    "script_tag_detach",
    "script_update",
    "tag_create",
    "tag_delete",
    "tag_update",
]
