"""Dependency scanning: requirements matched against OSV advisories (a folder, an API)."""

from __future__ import annotations

import json

import pytest
from packaging.version import Version

from prechecks.tools import dependencies_scan, osv_affects
from tests.prechecks.conftest import ADVISORY, _OsvStub


def _scan(script, **kwargs):
    options = {"root": None, "advisory_dir": None, "osv_url": None, "timeout": 10} | kwargs
    return dependencies_scan(script, **options)


def test_a_pinned_version_named_by_an_advisory_in_the_folder_is_reported(write, advisory_dir):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "# tools\nrequests==2.32.0\nEXAMPLEPKG==2.0.0  # pinned\n")
    report = _scan(script, advisory_dir=advisory_dir)
    assert report.errors == ()
    [finding] = report.findings
    assert (finding.kind, finding.tool, finding.rule_id) == ("dependency", "osv-folder", "PYSEC-2099-1")
    assert (finding.file, finding.line, finding.severity) == ("requirements.txt", 3, "critical")
    assert "examplepkg 2.0.0" in finding.message
    assert "fixed in 2.0.1" in finding.message


def test_a_fixed_version_is_not_reported(write, advisory_dir):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==2.0.1\n")
    assert _scan(script, advisory_dir=advisory_dir).findings == ()


def test_yaml_advisories_as_in_the_pypa_database_are_read(write, tmp_path):
    folder = tmp_path / "pypa" / "vulns" / "examplepkg"
    folder.mkdir(parents=True)
    (folder / "PYSEC-2099-1.yaml").write_text(
        "id: PYSEC-2099-2\naffected:\n- package: {ecosystem: PyPI, name: examplepkg}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '1.0'}, {fixed: '1.5'}]\n"
    )
    script = write("job.py", "print(1)\n")
    write("requirements-prod.txt", "examplepkg==1.4\n")
    [finding] = _scan(script, advisory_dir=tmp_path / "pypa").findings
    assert finding.rule_id == "PYSEC-2099-2"
    assert finding.severity == "high"  # no severity in the record: a known flaw counts as high


def test_the_same_flaw_under_two_ids_is_reported_once(write, advisory_dir):
    twin = dict(ADVISORY, id="GHSA-test-0001-xxxx", aliases=["PYSEC-2099-1"])
    (advisory_dir / "vulns" / "examplepkg" / "GHSA.json").write_text(json.dumps(twin))
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    assert len(_scan(script, advisory_dir=advisory_dir).findings) == 1


def test_unpinned_requirements_are_reported_as_such(write, advisory_dir):
    script = write("job.py", "print(1)\n")
    write(
        "requirements.txt", "examplepkg>=1.0\nrequests\nflask==2.*\nhttpx==0.28.1 \\\n    --hash=sha256:abc\n"
    )
    report = _scan(script, advisory_dir=advisory_dir)
    unpinned = {(f.rule_id, f.line, f.severity) for f in report.findings}
    assert unpinned == {("unpinned", 1, "low"), ("unpinned", 2, "low"), ("unpinned", 3, "low")}
    assert all("not pinned" in f.message for f in report.findings)


def test_pyproject_dependencies_and_the_roots_requirements_are_scanned(write, advisory_dir, tmp_path):
    script = write("sub/job.py", "print(1)\n")
    write("sub/pyproject.toml", '[project]\nname = "x"\ndependencies = [\n  "examplepkg==1.0",\n]\n')
    write("requirements.txt", "examplepkg==2.0.0\n")
    report = _scan(script, root=tmp_path / "scripts", advisory_dir=advisory_dir)
    assert {(f.file, f.line) for f in report.findings} == {("sub/pyproject.toml", 4), ("requirements.txt", 1)}


def test_no_requirement_file_is_a_note_not_an_error(write):
    report = _scan(write("job.py", "print(1)\n"))
    assert (report.findings, report.errors) == ((), ())
    assert report.notes


def test_pinned_requirements_without_an_advisory_source_are_an_error(write):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    [error] = _scan(script).errors
    assert "no advisory source configured" in error.message


def test_a_missing_advisory_folder_is_an_error(write, tmp_path):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    [error] = _scan(script, advisory_dir=tmp_path / "nowhere").errors
    assert "does not exist" in error.message


def test_a_stub_osv_api_is_asked_in_one_batch(write, osv_api):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\nrequests==2.32.0\n")
    report = _scan(script, osv_url=osv_api)
    assert report.errors == ()
    [finding] = report.findings
    assert (finding.tool, finding.rule_id, finding.line) == ("osv-api", "PYSEC-2099-1", 1)
    assert "Remote code execution" in finding.message
    [batch] = _OsvStub.queries
    assert [q["package"]["name"] for q in batch["queries"]] == ["examplepkg", "requests"]


def test_an_osv_api_that_does_not_answer_is_an_error(write, osv_api):
    script = write("job.py", "print(1)\n")
    write("requirements.txt", "examplepkg==1.0\n")
    [error] = _scan(script, osv_url=osv_api + "/broken").errors
    assert error.tool == "osv-api" and "HTTP 404" in error.message


@pytest.mark.parametrize(
    ("events", "versions", "version", "affected"),
    [
        ([{"introduced": "0"}, {"fixed": "2.0"}], [], "1.9", True),
        ([{"introduced": "0"}, {"fixed": "2.0"}], [], "2.0", False),
        ([{"introduced": "1.0"}, {"last_affected": "1.2"}], [], "1.2", True),
        ([{"introduced": "1.0"}, {"last_affected": "1.2"}], [], "1.2.1", False),
        ([{"introduced": "1.0"}], [], "0.9", False),
        ([{"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}], [], "2.5", True),
        ([], ["3.0.0"], "3.0", True),
    ],
)
def test_osv_ranges_and_version_lists(events, versions, version, affected):
    advisory = {
        "id": "X",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "pkg"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": versions,
            }
        ],
    }
    assert osv_affects(advisory, "pkg", Version(version)) is affected


def test_withdrawn_advisories_and_other_ecosystems_do_not_match():
    withdrawn = dict(ADVISORY, withdrawn="2099-01-02T00:00:00Z")
    npm = dict(
        ADVISORY, affected=[dict(ADVISORY["affected"][0], package={"ecosystem": "npm", "name": "examplepkg"})]
    )
    assert not osv_affects(withdrawn, "examplepkg", Version("1.0"))
    assert not osv_affects(npm, "examplepkg", Version("1.0"))
