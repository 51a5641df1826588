"""SCRIPTOPS_PRECHECK_BLOCK: parsing and what blocks."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from prechecks.checks import precheck_settings
from prechecks.policy import DEFAULT_POLICY, Policy, policy_parse
from prechecks.tools import Finding


def _finding(kind, severity, rule="R1"):
    return Finding("t", rule, severity, "high", "f", 1, "m", kind)


def test_the_default_blocks_secrets_high_code_known_vulnerabilities_and_errors():
    policy = policy_parse(DEFAULT_POLICY)
    assert policy == Policy(secret="low", code="high", dependency="low", unpinned=False, error=True)
    assert policy.blocks(_finding("secret", "low"))
    assert policy.blocks(_finding("code", "high"))
    assert policy.blocks(_finding("code", "critical"))
    assert not policy.blocks(_finding("code", "medium"))
    assert policy.blocks(_finding("dependency", "low", "PYSEC-1"))
    assert not policy.blocks(_finding("dependency", "low", "unpinned"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", Policy()),
        ("code:medium", Policy(code="medium")),
        (
            " Secret , dependency:critical ,unpinned",
            Policy(secret="low", dependency="critical", unpinned=True),
        ),
        ("code:any,error", Policy(code="low", error=True)),
    ],
)
def test_policy_syntax(text, expected):
    assert policy_parse(text) == expected


def test_unpinned_blocks_only_when_the_policy_says_so():
    assert policy_parse("unpinned").blocks(_finding("dependency", "low", "unpinned"))
    assert policy_parse("unpinned").blocks(_finding("dependency", "low", "unparsable"))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("code:severe", "unknown severity"),
        ("virus", "unknown rule"),
        ("code,code:high", "given twice"),
        ("none,secret", "unknown rule"),
        ("error:high", "unknown rule"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_variable(text, complaint):
    with pytest.raises(ImproperlyConfigured, match=complaint) as caught:
        policy_parse(text)
    assert "SCRIPTOPS_PRECHECK_BLOCK" in str(caught.value)


def test_a_bad_setting_fails_the_system_check(monkeypatch):
    assert precheck_settings() == []
    monkeypatch.setenv("SCRIPTOPS_PRECHECK_BLOCK", "code:severe")
    monkeypatch.setenv("SCRIPTOPS_OSV_URL", "ftp://osv.example")
    problems = precheck_settings()
    assert [p.id for p in problems] == ["prechecks.E001", "prechecks.E001"]
    assert "SCRIPTOPS_OSV_URL" in problems[1].msg
