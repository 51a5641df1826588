"""autobahn's debug-log arguments are computed only when a debug line is written."""

from __future__ import annotations

import pprint

import autobahn.websocket.protocol as autobahn_protocol

import scriptops.asgi  # noqa: F401 - applies the patches under test


def test_autobahn_pretty_prints_only_when_the_line_is_written() -> None:
    attrs = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("autoPingInterval", 0, "Factory")]

    deferred = autobahn_protocol.pformat(attrs)  # type: ignore[attr-defined]

    assert not isinstance(deferred, str)  # nothing formatted yet
    assert f"\n{deferred}" == "\n" + pprint.pformat(attrs)  # as the log line formats it


def test_autobahn_highlighting_returns_the_value_itself() -> None:
    value = object()
    assert autobahn_protocol.hltype(value) is value  # type: ignore[attr-defined,no-untyped-call]
    assert autobahn_protocol.hlval(value) is value  # type: ignore[attr-defined,no-untyped-call]
