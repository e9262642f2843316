#!/usr/bin/env python3
"""Samples a running gateway's /metrics every 50 ms until it stops answering or SIGTERM: the events
stored (acked `stored`) and forwarded (PUBACKed upstream) so far, one line per sample:
`SECONDS STORED FORWARDED` (seconds from the sampler's start). With --summary FILE, prints when the
first event was stored and when all N were stored and forwarded.

    metrics_sampler.py PORT OUT                 # sample into OUT
    metrics_sampler.py --summary OUT N          # read OUT back
"""
import re
import signal
import sys
import time
import urllib.request

NAMES = ("gateway_ingress_events_stored_total", "gateway_upstream_events_forwarded_total")
PATTERN = re.compile(r"^(%s)(\{[^}]*\})? ([0-9.e+]+)" % "|".join(NAMES), re.M)


def sample(port, out):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start = time.monotonic()
    with open(out, "w") as f:
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
            except Exception:
                return
            totals = dict.fromkeys(NAMES, 0.0)
            for m in PATTERN.finditer(body):
                totals[m.group(1)] += float(m.group(3))
            f.write(f"{time.monotonic() - start:.3f} {totals[NAMES[0]]:.0f} {totals[NAMES[1]]:.0f}\n")
            f.flush()
            time.sleep(0.05)


def summary(out, n):
    first = stored_all = forwarded_all = None
    for line in open(out):
        t, stored, forwarded = float(line.split()[0]), int(line.split()[1]), int(line.split()[2])
        if first is None and stored > 0:
            first = t
        if stored_all is None and stored >= n:
            stored_all = t
        if forwarded_all is None and forwarded >= n:
            forwarded_all = t
    if None in (first, stored_all, forwarded_all):
        print("metrics: the run did not store and forward every event while sampled")
        return
    print(f"metrics: stored all {n} {stored_all - first:.2f} s after the first ({n / (stored_all - first):.0f} events/s), "
          f"forwarded all {forwarded_all - stored_all:.2f} s after that")


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2], int(sys.argv[3]))
    else:
        sample(sys.argv[1], sys.argv[2])
