"""Child process of :func:`prechecks.tools.secrets.secrets_scan`: detect-secrets on one file.

Run as ``python -I _secrets_scan.py FILE``; prints a JSON list of ``{"type", "line",
"hash"}`` — never the secret itself. A child, because detect-secrets keeps its settings in a
process-wide singleton and the caller may be checking several scripts at once.
"""

import json
import sys

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings


def main(path: str) -> None:
    with default_settings() as settings:
        # An inline "pragma: allowlist secret" would let a script's author exempt their own
        # secret; exemptions are admins' accepted risks instead.
        settings.disable_filters("detect_secrets.filters.allowlist.is_line_allowlisted")
        found = SecretsCollection()
        found.scan_file(path)
        report = [
            {"type": secret.type, "line": secret.line_number, "hash": secret.secret_hash}
            for _, secret in found
        ]
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
