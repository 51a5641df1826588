"""Would a library script accept these arguments? Checked before a run is queued.

A scan reads a Python script's ``parser.add_argument(...)`` calls statically
(:mod:`library.analysis`). At launch, those parameters are rebuilt into a real
:class:`argparse.ArgumentParser` and the run's arguments parsed with it, so the
answer is argparse's own: an ``int`` given ``1.5``, a value outside ``choices``, a
missing required argument, the wrong number of values for ``nargs`` — the 400 names
the argument, instead of the run failing later with argparse's exit code 2.

It never refuses what the script might accept: arguments it does not know are left
alone (``parse_known_args``), a custom ``type=`` is not checked, and a script whose
parser a static read cannot follow (sub-commands, mutually exclusive groups, its own
``parse_known_args``) is only checked for the types and choices of the values given,
never for what is missing. A parameter list that argparse itself refuses to build is
not checked at all.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from django.db import connections

from core.precompiled import KeptRead
from library.models import Script
from runs.request import FieldProblems, Problem, RunRequest

# Signs in the source that the statically read parameters are not the whole parser.
_LOOSE_MARKERS = ("add_subparsers", "add_mutually_exclusive_group", "parse_known_args", "parse_intermixed")
_TYPES: dict[str, type] = {"int": int, "float": float}
_FLAG_ACTIONS = {"store_true", "store_false", "count"}
_SOURCE_READ = 512 * 1024
_REALPATH_LOOKUPS = 50


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise _Refused(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Refused(message or f"exit {status}")


def _choices(param: Mapping[str, Any], kind: type | None) -> list[Any] | None:
    choices = param.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    if kind is None and all(isinstance(c, str) for c in choices):
        return choices
    if kind is not None and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
        return choices
    return None  # a mix argparse would compare differently from the script: not checked


def build_parser(parameters: Sequence[Mapping[str, Any]], *, strict: bool) -> _Parser | None:
    """The parser the parameters describe, or None when argparse refuses to build it."""
    parser = _Parser(prog="script", add_help=False, allow_abbrev=False)
    try:
        for param in parameters:
            flags = [f for f in param.get("flags") or [] if isinstance(f, str) and f]
            if not flags:
                continue
            positional = bool(param.get("positional"))
            if positional and not strict:
                continue  # which positionals apply depends on a sub-command we cannot see
            action = param.get("action")
            kwargs: dict[str, Any] = {}
            if action in _FLAG_ACTIONS:
                kwargs["action"] = action
            elif action in ("store_const", "append_const"):
                kwargs["action"] = "store_true"  # takes no value either
            else:
                if action in ("append", "extend"):
                    kwargs["action"] = action
                kind = _TYPES.get(str(param.get("type")))
                if kind is not None:
                    kwargs["type"] = kind
                choices = _choices(param, kind)
                if choices is not None:
                    kwargs["choices"] = choices
                nargs = param.get("nargs")
                if nargs in ("?", "*", "+") or (
                    isinstance(nargs, int) and not isinstance(nargs, bool) and nargs >= 0
                ):
                    kwargs["nargs"] = nargs
            if positional:
                parser.add_argument(param.get("name") or flags[0], **kwargs)
            else:
                if strict and param.get("required"):
                    kwargs["required"] = True
                parser.add_argument(*flags, dest=str(param.get("name") or flags[0].lstrip("-")), **kwargs)
    except (argparse.ArgumentError, ValueError, TypeError):
        return None
    return parser


def arguments_problem(
    parameters: Sequence[Mapping[str, Any]], args: Sequence[str], *, strict: bool = True
) -> tuple[str, str | None] | None:
    """argparse's complaint about ``args`` and the parameter it names (its ``name``), or
    None when they parse."""
    parser = build_parser(parameters, strict=strict)
    if parser is None:
        return None
    try:
        parser.parse_known_args(list(args))
    except _Refused as exc:
        message = str(exc).strip()
        return message, _named(parameters, message)
    return None


def _named(parameters: Sequence[Mapping[str, Any]], message: str) -> str | None:
    """The parameter an argparse message is about (``argument --count: ...``)."""
    if not message.startswith("argument "):
        return None
    subject = message.removeprefix("argument ").split(":", 1)[0]
    names = subject.split("/")
    for param in parameters:
        flags = param.get("flags") or []
        if any(name in flags for name in names) or param.get("name") in names:
            return str(param.get("name"))
    return None


def _loose(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SOURCE_READ)
    except OSError:
        return True
    text = head.decode("utf-8", "replace")
    return any(marker in text for marker in _LOOSE_MARKERS)


_SAMPLE_NAME = "scriptops-sample-name"


_SCRIPTS_BY_NAME = KeptRead(
    "library.scripts_by_name",
    lambda name: Script.objects.filter(name=name).values("path", "parameters"),
    samples={"name": _SAMPLE_NAME},
)


def _scripts_named(name: str) -> list[tuple[str, Any]]:
    """(path, parameters) of the library's scripts called ``name``: a statement compiled
    once per connection (every launch asks; the ORM spent ~0.4 ms compiling it)."""
    rows = _SCRIPTS_BY_NAME.rows(connections[Script.objects.db], name=name)
    return [(row["path"], row["parameters"]) for row in rows]


def launch_arguments_problems(request: RunRequest) -> dict[str, FieldProblems]:
    """The ``args`` problem of a launch of a library script (registered with
    :func:`runs.request.launch_check_register`); none for scripts outside the library
    or without parameters. One query, by the indexed name."""
    path = request.script_path  # the real path
    found = _scripts_named(os.path.basename(path))
    parameters = next((params for where, params in found if where == path), None)
    if parameters is None and len(found) <= _REALPATH_LOOKUPS:  # a root reached through a symlink
        parameters = next((params for where, params in found if os.path.realpath(where) == path), None)
    if not parameters or not isinstance(parameters, list):
        return {}
    problem = arguments_problem(parameters, request.args, strict=not _loose(path))
    if problem is None:
        return {}
    message, name = problem
    text = f"The script would refuse these arguments: {message}."
    problems: dict[str, FieldProblems] = {"args": [Problem(text, "invalid_argument")]}
    if name:
        problems[f"args.{name}"] = [Problem(message, "invalid_argument")]
    return problems
