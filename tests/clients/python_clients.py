"""Segment's and RudderStack's Python libraries, unchanged, pointed at the gateway.

Run by tests/clients.rs with the virtualenv's interpreter:
    python python_clients.py LIBRARY RUN_ID
LIBRARY: segment (segment-analytics-python), legacy (analytics-python, the
same library under its former name), rudderstack (rudder-sdk-python).
Environment: TRACKGATE_URL, TRACKGATE_WRITE_KEY.

Sends a track, a page (a screen for the legacy library, which has no page
call) and an identify per delivery mode (gzip on and off), then one event with
an unknown write key, and prints one JSON line per mode: the library, its
version, the visitor ids used and the HTTP errors the library reported. The
Rust side reads the events back from Kafka.
"""

import json
import os
import sys
import time

LIBRARY, RUN_ID = sys.argv[1], sys.argv[2]
URL = os.environ["TRACKGATE_URL"]
KEY = os.environ["TRACKGATE_WRITE_KEY"]


def load():
    if LIBRARY == "segment":
        from segment.analytics import Client
        from segment.analytics.version import VERSION

        return Client, VERSION, "segment-analytics-python"
    if LIBRARY == "legacy":
        from analytics import Client
        from analytics.version import VERSION

        return Client, VERSION, "analytics-python"
    if LIBRARY == "rudderstack":
        from rudderstack.analytics.client import Client
        from rudderstack.analytics.version import VERSION

        return Client, VERSION, "rudder-sdk-python"
    raise SystemExit(f"unknown library {LIBRARY}")


Client, VERSION, NAME = load()


def run(mode, gzip):
    errors = []
    client = Client(
        KEY,
        host=URL,
        gzip=gzip,
        max_retries=2,
        on_error=lambda e, batch: errors.append(str(e)),
    )
    visitor = f"{LIBRARY}-{mode}-{RUN_ID}"
    user = f"user-{visitor}"
    client.track(user, "Order Completed", {"total": 12.5, "run": RUN_ID}, anonymous_id=visitor)
    if hasattr(client, "page"):
        client.page(user, category="Docs", name="Install", properties={"run": RUN_ID}, anonymous_id=visitor)
    else:
        client.screen(user, category="Docs", name="Install", properties={"run": RUN_ID}, anonymous_id=visitor)
    client.identify(user, {"plan": "pro"}, anonymous_id=visitor)
    client.flush()
    client.join()
    return {"client": NAME, "version": VERSION, "mode": mode, "visitor": visitor, "events": 3, "errors": errors}


def refused():
    """An unknown write key: a permanent error, answered once, not retried."""
    errors = []
    client = Client("wk_unknown_" + RUN_ID, host=URL, max_retries=10, on_error=lambda e, batch: errors.append(str(e)))
    start = time.monotonic()
    client.track("u", "Refused", {"run": RUN_ID})
    client.flush()
    client.join()
    return {"client": NAME, "version": VERSION, "mode": "unknown write key", "errors": errors,
            "seconds": round(time.monotonic() - start, 2)}


for mode, gzip in (("batch", False), ("batch+gzip", True)):
    print(json.dumps(run(mode, gzip)), flush=True)
print(json.dumps(refused()), flush=True)
