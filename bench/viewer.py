"""The run page with a finished 1,000,000-line, ~200 MB log: time until its tail shows.

A real stack runs a script printing 1,000,000 lines of ~200 bytes (output cap raised
so all of it is stored), then Chromium (Debian's, via Playwright; never downloaded)
signs in and opens ``/runs/<id>/``. Measured: from navigation start until the last
line's text is visible in the terminal, over a few repeats; beside it, the plain API
call the page makes for its first page (``/logs?format=json&limit=500``).
Target: under 1 s.

    .venv/bin/python bench/viewer.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.util import browser_login, running_stack, summary_ms, wait_terminal  # noqa: E402
from tests.stack import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

SCRIPT = """import sys
pad = "x" * 180
out = sys.stdout
for i in range(1, {lines} + 1):
    out.write(f"line {{i:07d}} {{pad}}\\n")
"""


def measure_viewer(quick: bool = False) -> dict[str, Any]:
    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} is missing"}
    from playwright.sync_api import sync_playwright

    lines = 100_000 if quick else 1_000_000
    repeats = 3 if quick else 5
    env = {"SCRIPTOPS_MAX_OUTPUT_BYTES": str(400 * 1024 * 1024)}
    with running_stack("viewer", workers=2, extra_env=env) as stack:
        stack.manage(
            "shell",
            "-c",
            "from core.models import User; "
            "User.objects.create_user('bench', password='bench-pass-1', role='user')",
        )
        script = stack.script("big.py", SCRIPT.format(lines=lines))
        with stack.client(timeout=300) as client:
            run_id = client.post("/api/run", json={"script_path": str(script)}).json()["id"]
            run = wait_terminal(client, run_id, timeout=600)
            api = []
            for _ in range(repeats):
                t = time.perf_counter()
                client.get(
                    f"/api/runs/{run_id}/logs", params={"format": "json", "limit": 500}
                ).raise_for_status()
                api.append(time.perf_counter() - t)
        last_text = f"line {lines:07d}"
        shown = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(base_url=stack.url, viewport={"width": 1360, "height": 900})
            page = context.new_page()
            browser_login(page, stack)
            for _ in range(repeats):
                t = time.perf_counter()
                page.goto(f"/runs/{run_id}/", wait_until="commit")
                page.get_by_text(last_text, exact=False).first.wait_for(state="visible", timeout=30_000)
                shown.append(time.perf_counter() - t)
            browser.close()
    return {
        "lines": lines,
        "stored_bytes": run.get("output_bytes"),
        "status": run.get("status"),
        "tail_shown": summary_ms(shown),
        "first_page_api": summary_ms(api),
        "target_ms": 1000,
        "met": max(shown) < 1.0 if shown else False,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure_viewer(quick="--quick" in sys.argv), indent=2))
