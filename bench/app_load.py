"""What loading the app costs a browser: bytes on the wire and time to the first frame.

Runs headless Chromium (Debian's package, via Playwright) against a running app (`make run`
serves it on :8080). A first visit uses a new browser profile; a repeat visit reloads in
the same profile, so the browser's cache and revalidation (ETag, 304) take part. Bytes are
what Chromium's network layer counts as received (headers and compressed bodies); the first
frame is Flutter's `flutter-first-frame` event.

The server compresses each file quickly on its first request and at the best level in the
background, so the first run after a fresh start warms it up and is not counted.

Run: .venv/bin/python bench/app_load.py [--url http://localhost:8080] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

FIRST_FRAME = "window.addEventListener('flutter-first-frame', () => { window.firstFrameAt = performance.now(); });"


def load(page: Any, url: str) -> tuple[int, float]:
    """(bytes received, milliseconds from navigation to Flutter's first frame)."""
    received: list[int] = []
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.loadingFinished", lambda event: received.append(int(event["encodedDataLength"])))
    page.goto(url)
    page.wait_for_function("window.firstFrameAt !== undefined", timeout=60_000)
    first_frame = float(page.evaluate("window.firstFrameAt"))
    # Let the first view's own requests (images) finish before counting.
    page.wait_for_load_state("networkidle")
    cdp.detach()
    return sum(received), first_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    first_bytes, first_ms, repeat_bytes, repeat_ms = [], [], [], []
    with sync_playwright() as playwright:
        for run in range(options.runs + 1):
            with tempfile.TemporaryDirectory() as profile_dir:
                context = playwright.chromium.launch_persistent_context(Path(profile_dir), executable_path=chromium)
                context.add_init_script(FIRST_FRAME)
                cold = load(context.new_page(), options.url)
                warm = load(context.new_page(), options.url)
                context.close()
            if run == 0:
                continue  # the warm-up
            first_bytes.append(cold[0])
            first_ms.append(cold[1])
            repeat_bytes.append(warm[0])
            repeat_ms.append(warm[1])
    result = {
        "url": options.url,
        "runs": options.runs,
        "first_visit_bytes_median": int(statistics.median(first_bytes)),
        "first_visit_first_frame_ms_median": round(statistics.median(first_ms)),
        "repeat_visit_bytes_median": int(statistics.median(repeat_bytes)),
        "repeat_visit_first_frame_ms_median": round(statistics.median(repeat_ms)),
        "first_visit_bytes": first_bytes,
        "repeat_visit_bytes": repeat_bytes,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
