"""A monitor's device: submits reports one by one, retrying each until acknowledged.

Standard library only, run as its own process by test_crash.py and the benchmarks::

    python submit_client.py URL TOKEN PREFIX N ACK_FILE [--rate R]

Each acknowledged id (201 accepted or 200 duplicate) is appended to ACK_FILE and fsync'ed before
the next report is sent, so the file holds exactly what the server acknowledged. Connection
errors, timeouts and 5xx are retried with the same report (same id) after a short pause.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.parse


def record(prefix: str, i: int) -> dict[str, object]:
    return {
        "id": f"{prefix}-{i}",
        "observed_at": "2025-03-01T10:00:00Z",
        "lon": 36.9 + (i % 50) * 0.002,
        "lat": 48.6 - (i // 50 % 20) * 0.01,
        "kind": "armed_personnel",
        "source_type": "patrol",
        "uncertainty_m": 50,
    }


def main(argv: list[str]) -> int:
    url, token, prefix, n, ack_path = argv[:5]
    rate = float(argv[argv.index("--rate") + 1]) if "--rate" in argv else 0.0
    u = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn: http.client.HTTPConnection | None = None
    retries = 0
    deadline = time.monotonic() + 300
    with open(ack_path, "a", encoding="utf-8") as ack:
        for i in range(int(n)):
            body = json.dumps(record(prefix, i))
            while True:
                if time.monotonic() > deadline:
                    print(f"gave up at {prefix}-{i}", file=sys.stderr)
                    return 2
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                    conn.request("POST", "/api/v1/incidents", body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    if resp.status in (200, 201):
                        ack.write(f"{prefix}-{i}\n")
                        ack.flush()
                        os.fsync(ack.fileno())
                        break
                    if resp.status < 500:
                        print(f"{prefix}-{i}: {resp.status} {payload[:200]!r}", file=sys.stderr)
                        return 3
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                retries += 1
                time.sleep(0.05)
            if rate:
                time.sleep(1.0 / rate)
    print(json.dumps({"prefix": prefix, "retries": retries}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
