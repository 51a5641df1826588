"""Secret scanning with detect-secrets: the line and the kind, never the secret."""

from __future__ import annotations

from dataclasses import asdict

from prechecks.tools import secrets_scan
from tests.prechecks.conftest import AWS_KEY, PRIVATE_KEY_BODY


def test_aws_key_and_private_key_are_found_with_line_and_kind(secret_script):
    report = secrets_scan(secret_script, timeout=60)
    assert report.errors == ()
    found = {(f.rule_id, f.line) for f in report.findings}
    assert ("AWSAccessKey", 1) in found
    assert ("PrivateKey", 2) in found
    assert {f.kind for f in report.findings} == {"secret"}
    assert all(f.tool == "detect-secrets" and f.file == "leaky.py" for f in report.findings)


def test_no_field_of_a_secret_finding_holds_the_secret(secret_script):
    for finding in secrets_scan(secret_script, timeout=60).findings:
        text = repr(asdict(finding)) + repr(finding)
        assert AWS_KEY not in text
        assert AWS_KEY[4:] not in text
        assert PRIVATE_KEY_BODY[:20] not in text


def test_an_allowlist_pragma_does_not_hide_a_secret(write):
    script = write("hidden.py", f'KEY = "{AWS_KEY}"  # pragma: allowlist secret\n')
    assert [f.rule_id for f in secrets_scan(script, timeout=60).findings] == ["AWSAccessKey"]


def test_a_file_without_secrets_is_clean(write):
    report = secrets_scan(write("fine.sh", 'echo "hello"\n'), timeout=60)
    assert (report.findings, report.errors) == ((), ())


def test_a_scan_that_times_out_is_an_error_not_clean(secret_script):
    report = secrets_scan(secret_script, timeout=0.001)
    assert report.findings == ()
    assert [e.tool for e in report.errors] == ["detect-secrets"]
