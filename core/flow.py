"""Flow control helpers for daphne's Twisted transports (websockets and streamed HTTP).

Neither Channels' ``send`` nor an ASGI ``http.response.body`` send waits for a slow
client: daphne hands the bytes to Twisted, whose transport buffers whatever it is given.
A writer that must not grow the server's memory looks at that buffer itself.
"""

from __future__ import annotations

from typing import Any


def transport_buffered(transport: Any) -> int | None:
    """Bytes waiting in a Twisted TCP transport's write buffer (``FileDescriptor``), or
    None if this transport does not say (another server, tests)."""
    try:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)
    except (AttributeError, TypeError):
        return None
