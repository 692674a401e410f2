"""How long one release message takes to reach Slack, and how long a page is delayed when
Slack fails and the message is retried.

Run from the repository root in the project's virtualenv::

    python benchmarks/notify_latency.py [--messages 200]

Measures, against the sandbox Slack double on 127.0.0.1 with the real slack_sdk client and
a SQLite store (the notification and the release thread are written to it):

* **send**: ``deliver`` of one message to one ``SlackChannel`` (chat.postMessage in the
  release's thread, recorded in the store), median and 95th percentile;
* **retry**: the same with Slack answering 500 twice first (backoff 0.05 s, 0.1 s).

Target: a message is sent in under 100 ms (median), so comms never hold a release step up.
Exits 0 when the target is met, 1 when not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from shipcaptain.notifiers import Message, SlackChannel, deliver
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.store import open_store

TARGET_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SlackDouble() as slack:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        channel = SlackChannel(slack.token, "#releases", slack.api_url)
        times: list[float] = []
        for i in range(args.messages):
            start = time.perf_counter()
            (record,) = deliver(
                store,
                [channel],
                Message(f"message {i}", release_id="rel-bench", kind="comms.bench"),
            )
            times.append((time.perf_counter() - start) * 1000)
            assert record.status == "sent"
        slack.fail("500", times=2)
        start = time.perf_counter()
        (retried,) = deliver(store, [channel], Message("after failures"), backoff=0.05)
        retry_ms = (time.perf_counter() - start) * 1000
        store.close()
    median = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[18]
    print(f"send: {args.messages} messages, median {median:.1f} ms, p95 {p95:.1f} ms")
    print(f"retry: sent on try {retried.attempts} after 2 failures in {retry_ms:.0f} ms")
    ok = median < TARGET_MS and retried.status == "sent"
    print(f"target: median under {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
