"""Presets: named run options of a script, a person's own or shared by an admin.

Options are checked as a launch would be (:func:`runs.request.run_request_clean` with
the script's path, then the launch checks: the script's own argparse parameters), so
a preset that is saved can be launched. Environment values are stored and never
returned (:func:`preset_masked`); an update or a launch that sends the mask for a
variable keeps the stored value.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from audit.services import record
from core.errors import Forbidden, InvalidInput
from core.models import User
from library.models import Preset, Script
from runs.models import ANALYTICS_OPTION_FIELDS, PRECHECK_OPTION_FIELDS, RUN_OPTION_FIELDS
from runs.request import launch_check, run_request_clean

# The run request fields a preset may hold: the run options, not the analytics or
# pre-check ones (those belong to a run or a task), plus how the output is handled.
PRESET_FIELDS = (
    *(name for name in RUN_OPTION_FIELDS if name not in (*ANALYTICS_OPTION_FIELDS, *PRECHECK_OPTION_FIELDS)),
    "stream_output",
    "monitor_interval",
    "enable_history",
)
MASK = "********"
NAME_MAX = 100


def preset_masked(options: dict[str, Any]) -> dict[str, Any]:
    """The options as the API shows them: environment values masked."""
    shown = dict(options)
    if isinstance(shown.get("env_vars"), dict):
        shown["env_vars"] = dict.fromkeys(shown["env_vars"], MASK)
    return shown


def _merge_env(stored: dict[str, str] | None, given: Any) -> Any:
    """``given`` env with the masked values taken from ``stored`` (a value never sent)."""
    if not isinstance(given, dict):
        return given
    stored = stored or {}
    return {name: (stored.get(name, "") if value == MASK else value) for name, value in given.items()}


def preset_options_clean(
    *, script: Script, options: Any, stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The options of a preset of ``script``, checked as a launch is: unknown fields,
    bad values and arguments the script would refuse are 400s naming the field."""
    if not isinstance(options, dict):
        raise InvalidInput("options", "Expected a JSON object of run options.")
    unknown = sorted(set(options) - set(PRESET_FIELDS))
    if unknown:
        raise InvalidInput(
            "options", f"Not a preset option: {', '.join(unknown)} (allowed: {', '.join(PRESET_FIELDS)})."
        )
    given = dict(options)
    if "env_vars" in given:
        given["env_vars"] = _merge_env((stored or {}).get("env_vars"), given["env_vars"])
    request = run_request_clean({**given, "script_path": script.path})
    launch_check(request)
    fields = request.run_fields()
    return {name: fields[name] for name in given}


def _name(raw: Any) -> str:
    name = raw.strip() if isinstance(raw, str) else ""
    if not name:
        raise InvalidInput("name", "Give the preset a name.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput("name", "A preset's name cannot hold control characters (NUL, newlines…).")
    if len(name) > NAME_MAX:
        raise InvalidInput("name", f"At most {NAME_MAX} characters.")
    return name


def preset_may_change(*, preset: Preset, user: User, is_admin: bool) -> bool:
    """Admins manage shared presets and anyone's; others only their own."""
    return is_admin or (preset.owner_id is not None and preset.owner_id == user.pk)


def _saved(preset: Preset) -> Preset:
    try:
        with transaction.atomic():
            preset.save()
    except IntegrityError as exc:
        raise InvalidInput(
            "name", f"There is already a preset named {preset.name!r} for this script."
        ) from exc
    return preset


def preset_create(
    *, script: Script, name: Any, options: Any, user: User, shared: bool, is_admin: bool
) -> Preset:
    if shared and not is_admin:
        raise Forbidden("Only an admin may share a preset with everyone.")
    preset = Preset(
        script=script,
        name=_name(name),
        owner=None if shared else user,
        options=preset_options_clean(script=script, options=options),
        created_by=user,
    )
    _saved(preset)
    _record(preset, "create", user)
    return preset


def _record(preset: Preset, verb: str, user: User) -> None:
    # The preset's options are not copied: its environment may hold secrets.
    record(
        action=f"preset.{verb}",
        object_type="preset",
        object_id=preset.pk,
        summary=f"Preset {preset.name!r} of {preset.script.path} {verb}d",
        data={"name": preset.name, "script_id": preset.script_id, "shared": preset.owner_id is None},
        actor=user if getattr(user, "is_authenticated", False) else None,
    )


def preset_update(
    *, preset: Preset, user: User, is_admin: bool, name: Any = None, options: Any = None
) -> Preset:
    if not preset_may_change(preset=preset, user=user, is_admin=is_admin):
        raise Forbidden("Only its owner or an admin may change this preset.")
    if name is not None:
        preset.name = _name(name)
    if options is not None:
        preset.options = preset_options_clean(script=preset.script, options=options, stored=preset.options)
    _saved(preset)
    _record(preset, "update", user)
    return preset


def preset_delete(*, preset: Preset, user: User, is_admin: bool) -> None:
    if not preset_may_change(preset=preset, user=user, is_admin=is_admin):
        raise Forbidden("Only its owner or an admin may delete this preset.")
    _record(preset, "delete", user)
    preset.delete()


def preset_launch_options(*, preset: Preset, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run request fields of a launch with ``preset``: what the caller sends wins,
    the environment is the preset's with the caller's variables on top (a masked value
    keeps the preset's)."""
    options = {**preset.options, **overrides}
    if "env_vars" in overrides:
        stored = preset.options.get("env_vars") or {}
        given = _merge_env(stored, overrides["env_vars"])
        options["env_vars"] = {**stored, **given} if isinstance(given, dict) else given
    return options
