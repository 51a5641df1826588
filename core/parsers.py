"""The API's JSON parser: DRF's, with the body size bounded.

DRF's ``JSONParser`` reads the request stream to its end, so Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (which guards ``request.body`` and form posts) never
applies to JSON: a client could make a worker hold and parse any number of megabytes.
This one reads at most that many bytes (plus one, to tell "too large"), with or without a
``Content-Length``, and answers 413. Uploads are multipart and keep their own limit
(``SCRIPTOPS_MAX_UPLOAD_BYTES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from core.errors import TooLarge


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        if stream is None:
            raise ParseError("The request has no body.")
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise TooLarge(f"The request body is larger than {limit} bytes.")
        try:
            text = raw.decode(encoding)
            # DRF's json refuses NaN and Infinity (STRICT_JSON), as its own parser does.
            return json.loads(text) if self.strict else json.loads(text, parse_constant=None)
        except ValueError as exc:  # also UnicodeDecodeError: invalid UTF-8
            raise ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:  # 10,000 nested "[": the client's fault
            raise ParseError("The request is nested too deeply.") from exc
