"""What a scan reads from one script file: language, lines, hash, description, parameters.

Plain Python, no Django. Nothing here imports, executes or evaluates a script: Python
files are only parsed with :mod:`ast`.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

LANGUAGES_BY_EXTENSION = {
    ".py": "python",
    ".pyw": "python",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ksh": "shell",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".rb": "ruby",
    ".pl": "perl",
    ".pm": "perl",
    ".ps1": "powershell",
    ".psm1": "powershell",
    ".sql": "sql",
    ".php": "php",
    ".lua": "lua",
    ".r": "r",
    ".tcl": "tcl",
    ".awk": "awk",
    ".bat": "batch",
    ".cmd": "batch",
}
# Interpreter names found in a shebang (``#!/usr/bin/env python3 -u`` → ``python3``).
LANGUAGES_BY_INTERPRETER = {
    "python": "python",
    "pypy": "python",
    "sh": "shell",
    "ash": "shell",
    "mksh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "ksh": "shell",
    "dash": "shell",
    "node": "javascript",
    "nodejs": "javascript",
    "bun": "javascript",
    "deno": "typescript",
    "ts-node": "typescript",
    "ruby": "ruby",
    "perl": "perl",
    "pwsh": "powershell",
    "powershell": "powershell",
    "php": "php",
    "lua": "lua",
    "rscript": "r",
    "tclsh": "tcl",
    "wish": "tcl",
    "awk": "awk",
    "gawk": "awk",
}
# Line-comment prefixes, for descriptions taken from a leading comment block.
COMMENT_PREFIXES = {
    "python": ("#",),
    "shell": ("#",),
    "ruby": ("#",),
    "perl": ("#",),
    "powershell": ("#",),
    "r": ("#",),
    "tcl": ("#",),
    "awk": ("#",),
    "javascript": ("//",),
    "typescript": ("//",),
    "php": ("//", "#"),
    "sql": ("--",),
    "lua": ("--",),
    "batch": ("REM ", "rem ", "::"),
}
# The extensions of each language (``shell`` → ``.sh``, ``.bash`` …): a script without an
# extension is matched against a root's include globs as if it had one of these.
EXTENSIONS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {}
for _ext, _language in LANGUAGES_BY_EXTENSION.items():
    EXTENSIONS_BY_LANGUAGE[_language] = (*EXTENSIONS_BY_LANGUAGE.get(_language, ()), _ext)
DESCRIPTION_MAX = 2000
PARSE_ERROR_MAX = 500  # Script.parse_error's max_length
BINARY_SNIFF = 8192
_VERSION_SUFFIX = re.compile(r"[\d.]+$")
# Options of env(1) that take a value as the next word (``env -u NAME python3``).
_ENV_OPTIONS_WITH_VALUE = frozenset({"-u", "--unset", "-C", "--chdir", "-P", "-a", "--argv0"})


@dataclass
class Analysis:
    language: str
    shebang: str = ""
    line_count: int = 0
    sha256: str = ""
    description: str = ""
    parameters: list[dict[str, Any]] = field(default_factory=list)
    is_binary: bool = False
    # Why the file does not parse (Python: ``SyntaxError: … (line 3, column 5)``); empty
    # when it parses, is not Python, or was read only in part (a cut file never parses).
    parse_error: str = ""


def is_binary(data: bytes) -> bool:
    """A NUL byte in the first 8 KiB, or text that is not UTF-8 at all."""
    head = data[:BINARY_SNIFF]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start < len(head) - 3
    return False


def shebang_of(data: bytes) -> str:
    if not data.startswith(b"#!"):
        return ""
    line = data[2 : data.find(b"\n") if b"\n" in data[:512] else 512]
    return line.decode("utf-8", errors="replace").strip()[:255]


def _env_command(args: list[str]) -> str:
    """The command ``env`` runs, from the words after it in a shebang.

    Skips options (and the value of those that take one) and ``NAME=value`` assignments;
    ``-S``/``--split-string`` (Linux passes ``-S node --flag`` to env as one word) is
    followed by the command line itself.
    """
    words = iter(args)
    for word in words:
        if word.startswith("--split-string="):
            return _env_command(word.split("=", 1)[1].split() + list(words))
        if word.startswith("-S") and len(word) > 2:  # -Snode
            return _env_command([word[2:], *words])
        if word in _ENV_OPTIONS_WITH_VALUE:
            next(words, None)
            continue
        if word.startswith("-") or "=" in word:
            continue
        return word
    return ""


def interpreter_of(shebang: str) -> str:
    """The interpreter a shebang line names, lower-case, without folder or version:
    ``python`` for ``/usr/bin/env -S python3.11 -u``; empty if it names none."""
    parts = shebang.split()
    if not parts:
        return ""
    exe = PurePath(parts[0]).name
    if exe == "env":
        exe = PurePath(_env_command(parts[1:])).name
    exe = exe.lower()
    return _VERSION_SUFFIX.sub("", exe) or exe


def language_of(name: str, shebang: str) -> str:
    """By shebang first (it is what runs the file), then by extension; else ``other``."""
    by_interpreter = LANGUAGES_BY_INTERPRETER.get(interpreter_of(shebang))
    if by_interpreter:
        return by_interpreter
    suffix = PurePath(name).suffix
    return LANGUAGES_BY_EXTENSION.get(suffix, LANGUAGES_BY_EXTENSION.get(suffix.lower(), "other"))


def count_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _comment_description(text: str, language: str) -> str:
    """The first block of line comments (after a shebang and coding/lint pragmas)."""
    prefixes = COMMENT_PREFIXES.get(language, ("#", "//", "--"))
    lines: list[str] = []
    for raw in text.splitlines()[:200]:
        line = raw.strip()
        if not lines and (
            not line or line.startswith("#!") or "-*-" in line or line.startswith("# shellcheck")
        ):
            continue
        if language in ("javascript", "typescript") and line.startswith(("/*", "*")):
            line = "// " + line.lstrip("/*").rstrip("*/").strip()
        prefix = next((p for p in prefixes if line.startswith(p)), None)
        if prefix is None:
            break
        body = line[len(prefix) :].strip()
        if set(body) <= {"#", "-", "=", "*", "/"} and body:
            continue  # ruler lines like "#####"
        lines.append(body)
    return "\n".join(lines).strip()[:DESCRIPTION_MAX]


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        if isinstance(node, ast.Name):
            return node.id  # type=int, type=float, …
        if isinstance(node, ast.Attribute):
            return ast.unparse(node)
        return None


def _argparse_parameters(tree: ast.Module) -> list[dict[str, Any]]:
    """``parser.add_argument(...)`` calls, read statically."""
    params: list[dict[str, Any]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not flags:
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        positional = not flags[0].startswith("-")
        long_flag = next((f for f in flags if f.startswith("--")), flags[0])
        dest = _literal(kw.get("dest")) or long_flag.lstrip("-").replace("-", "_")
        action = _literal(kw.get("action"))
        type_name = _literal(kw.get("type"))
        param: dict[str, Any] = {
            "name": str(dest),
            "flags": flags,
            "positional": positional,
            "required": bool(_literal(kw.get("required"))) if not positional else kw.get("nargs") is None,
            "help": _literal(kw.get("help")) if isinstance(_literal(kw.get("help")), str) else "",
            "default": _jsonable(_literal(kw.get("default"))),
            "type": type_name if isinstance(type_name, str) else None,
            "choices": _jsonable(_literal(kw.get("choices"))),
            "action": action if isinstance(action, str) else None,
            "nargs": _jsonable(_literal(kw.get("nargs"))),
            "metavar": _jsonable(_literal(kw.get("metavar"))),
        }
        if param["action"] in ("store_true", "store_false", "count", "help", "version"):
            param["type"] = "flag" if param["action"] != "count" else "count"
        if param["action"] in ("help", "version"):
            continue
        params.append(param)
        if len(params) >= 100:
            break
    return params


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value][:100]
    return str(value)[:200]


def _parse_error(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}" if exc.lineno else ""
        if where and exc.offset:
            where += f", column {exc.offset}"
        message = f"{exc.__class__.__name__}: {exc.msg}" + (f" ({where})" if where else "")
    elif isinstance(exc, (MemoryError, RecursionError)):
        message = "The code is too deeply nested to parse."
    else:
        message = f"{exc.__class__.__name__}: {exc}"
    return message[:PARSE_ERROR_MAX]


def _python(text: str) -> tuple[str, list[dict[str, Any]], str]:
    """Docstring, argparse parameters and parse error of Python source."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return "", [], _parse_error(exc)
    doc = ast.get_docstring(tree) or ""
    params = _argparse_parameters(tree) if "add_argument" in text else []
    return doc.strip()[:DESCRIPTION_MAX], params, ""


def analyse(name: str, data: bytes, *, complete: bool = True) -> Analysis:
    """Everything the library records about a script with this name and content.

    ``complete=False`` says ``data`` is only the start of the file (the read cap): it is
    still described, but a parse error is not reported, since a cut file never parses.
    """
    digest = hashlib.sha256(data).hexdigest()
    lines = count_lines(data)
    shebang = shebang_of(data)
    language = language_of(name, shebang)
    if is_binary(data):
        return Analysis(language=language, shebang="", line_count=lines, sha256=digest, is_binary=True)
    text = data.decode("utf-8", errors="replace")
    description, params, parse_error = "", list[dict[str, Any]](), ""
    if language == "python":
        description, params, parse_error = _python(text)
    if not description:
        description = _comment_description(text, language)
    return Analysis(
        language=language,
        shebang=shebang,
        line_count=lines,
        sha256=digest,
        description=description,
        parameters=params,
        parse_error=parse_error if complete else "",
    )
