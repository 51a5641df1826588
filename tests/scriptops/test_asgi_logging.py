"""Patches daphne's stack gets in scriptops.asgi: autobahn's debug-log arguments are
computed only when a debug line is written; Twisted's Content-Type parse is kept per value."""

from __future__ import annotations

import pprint

import autobahn.websocket.protocol as autobahn_protocol

import scriptops.asgi  # applies the patches under test


def test_autobahn_pretty_prints_only_when_the_line_is_written() -> None:
    attrs = [("openHandshakeTimeout", 5, "WebSocketServerFactory"), ("autoPingInterval", 0, "Factory")]

    deferred = autobahn_protocol.pformat(attrs)  # type: ignore[attr-defined]

    assert not isinstance(deferred, str)  # nothing formatted yet
    assert f"\n{deferred}" == "\n" + pprint.pformat(attrs)  # as the log line formats it


def test_autobahn_highlighting_returns_the_value_itself() -> None:
    value = object()
    assert autobahn_protocol.hltype(value) is value  # type: ignore[attr-defined,no-untyped-call]
    assert autobahn_protocol.hlval(value) is value  # type: ignore[attr-defined,no-untyped-call]


def test_twisteds_content_type_parse_is_kept_per_value_and_unchanged() -> None:
    import twisted.web.http as twisted_http

    original = scriptops.asgi._parse_content_type
    assert twisted_http._parseContentType is scriptops.asgi._content_type  # the patch is applied
    values = [
        b"application/json",
        b"application/json; charset=utf-8",
        b"Application/X-WWW-Form-Urlencoded",
        b'multipart/form-data; boundary="----x"',
        b"not a content type",
        b"",
        b"text/plain; charset=" + b"x" * 200,  # longer than is kept: parsed each time
    ]
    scriptops.asgi._content_type_kept.cache_clear()
    for _ in range(2):
        for value in values:
            assert twisted_http._parseContentType(value) == original(value)
    info = scriptops.asgi._content_type_kept.cache_info()
    assert (info.hits, info.misses) == (len(values) - 1, len(values) - 1)
