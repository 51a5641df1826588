"""Code analysis with the real tools: Bandit on Python, ShellCheck on shell scripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prechecks.tools import code_analyse


def test_bandit_reports_shell_true_and_eval_with_severity_and_confidence(write):
    script = write(
        "deploy.py",
        """
        import subprocess
        cmd = input()
        subprocess.call(cmd, shell=True)
        eval(input())
        """,
    )
    report = code_analyse(script, timeout=60)
    assert report.errors == ()
    by_rule = {f.rule_id: f for f in report.findings}
    shell = by_rule["B602"]
    assert (shell.tool, shell.kind, shell.severity, shell.confidence) == ("bandit", "code", "high", "high")
    assert (shell.file, shell.line) == ("deploy.py", 3)
    assert "shell=True" in shell.message
    assert by_rule["B307"].line == 4  # eval
    assert by_rule["B307"].severity == "medium"


def test_bandit_ignores_nosec_comments_an_author_could_add(write):
    script = write("sneaky.py", "import subprocess\nsubprocess.call(input(), shell=True)  # nosec\n")
    assert "B602" in {f.rule_id for f in code_analyse(script, timeout=60).findings}


def test_bandit_message_quoting_a_password_is_masked(write):
    script = write("pw.py", 'password = "Tr0ub4dor-and-3"\n')
    findings = code_analyse(script, timeout=60).findings
    assert [f.rule_id for f in findings] == ["B105"]
    assert "Tr0ub4dor" not in findings[0].message
    assert "***" in findings[0].message


def test_a_python_file_bandit_cannot_parse_is_an_error_not_clean(write):
    report = code_analyse(write("broken.py", "def f(:\n    pass\n"), timeout=60)
    assert report.findings == ()
    assert [e.tool for e in report.errors] == ["bandit"]
    assert "syntax error" in report.errors[0].message


def test_a_python_shebang_without_suffix_goes_to_bandit(write):
    script = write("tool", "#!/usr/bin/env python3\nimport os\nos.system(input())\n")
    assert {f.tool for f in code_analyse(script, timeout=60).findings} == {"bandit"}


def test_shellcheck_reports_an_unquoted_variable(write):
    script = write("clean.sh", '#!/bin/bash\ntarget=$1\nrm -rf $target/tmp\necho "done"\n')
    report = code_analyse(script, timeout=60)
    assert report.errors == ()
    [finding] = report.findings
    assert (finding.tool, finding.rule_id, finding.line, finding.kind) == ("shellcheck", "SC2086", 3, "code")
    assert finding.severity == "low"  # ShellCheck's "info"
    assert "quote" in finding.message.lower()


def test_a_sh_file_without_shebang_is_checked_as_bash(write):
    report = code_analyse(write("noshebang.sh", 'echo "$1"\n'), timeout=60)
    assert report == type(report)()  # clean: no "which shell?" complaint (SC2148)


def test_shellcheck_missing_is_a_clear_error_not_a_pass(write, tmp_path, monkeypatch):
    # Simulates a machine without ShellCheck: a PATH that does not hold it.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("shellcheck") is None
    report = code_analyse(write("x.sh", "rm -rf $1\n"), timeout=60)
    assert report.findings == ()
    assert [(e.tool, e.message.split(" (")[0]) for e in report.errors] == [
        ("shellcheck", "shellcheck is not installed")
    ]


def test_a_tool_that_times_out_is_an_error_not_clean(write):
    report = code_analyse(write("slow.py", "x = 1\n" * 2000), timeout=0.001)
    assert report.findings == ()
    assert [e.tool for e in report.errors] == ["bandit"]
    assert "timed out" in report.errors[0].message


@pytest.mark.parametrize("name", ["script.rb", "query.sql"])
def test_other_script_kinds_get_a_note_not_a_finding(write, name):
    report = code_analyse(write(name, "puts 1\n"), timeout=60)
    assert (report.findings, report.errors) == ((), ())
    assert report.notes and "no code analyser" in report.notes[0]


def test_a_missing_file_is_an_error(tmp_path: Path):
    report = code_analyse(tmp_path / "gone.py", timeout=60)
    assert report.errors and not report.findings
