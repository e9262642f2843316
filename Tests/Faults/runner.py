"""Command line, the result table and the exit status of scripts/faults."""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .procs import GatewayCrashed, HarnessError, Sandbox
from .scenarios import DEFAULT_RSS_LIMIT_MB, SCENARIOS, Context, Result

REPO = Path(__file__).resolve().parents[2]

# Parts of scenarios that --skip can leave out.
PARTS = ["disk-full/dedup-cap", "disk-full/tmpfs"]


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted(f"signal {signum}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/faults",
        description="Fault-injection suite: drives the real edge-gateway daemon and real mosquitto brokers "
                    "through crashes, outages, full disks, corruption and hostile input, and checks that no "
                    "acked event is lost, per-device order holds and repeats are exact.")
    parser.add_argument("--quick", action="store_true", help="short version of every scenario (CI)")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--gateway", metavar="PATH",
                        default=os.environ.get("EDGE_GATEWAY_BIN") or str(REPO / ".build/debug/edge-gateway"),
                        help="edge-gateway binary (default: $EDGE_GATEWAY_BIN, else .build/debug/edge-gateway)")
    # 64: the debug build idles near 57 MB, and with the event log (store.eventLogBytes, 1 MiB) a
    # backlog behind a slow upstream keeps up to a log's worth of events in memory for readers until
    # the transaction commits (about 2 MB at most), bounded by the log, not by the backlog.
    parser.add_argument("--rss-limit-mb", type=float, default=DEFAULT_RSS_LIMIT_MB,
                        help=f"slow-consumer fails when the daemon's RSS exceeds this (default {DEFAULT_RSS_LIMIT_MB:.0f})")
    parser.add_argument("--tmpfs-mb", type=int, default=1,
                        help="size of the tmpfs the disk-full scenario fills (default 1; 0 skips that part)")
    parser.add_argument("--skip", metavar="SCENARIO/PART[,...]", default="",
                        help="skip parts of scenarios: " + ", ".join(PARTS))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, stores)")
    parser.add_argument("--verbose", "-v", action="store_true", help="a line per cycle")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def run_scenario(name: str, args: argparse.Namespace, seed: int, root: Path) -> Result:
    result = Result(name)
    sandbox = Sandbox(root, name)
    ctx = Context(sandbox=sandbox, rng=random.Random(f"{seed}-{name}"), quick=args.quick, binary=args.gateway,
                  result=result, verbose=args.verbose, rss_limit_mb=args.rss_limit_mb, tmpfs_mb=args.tmpfs_mb,
                  skip=frozenset(p.strip() for p in args.skip.split(",") if p.strip()))
    print(f"== {name} ({'quick' if args.quick else 'full'}, seed {seed}) in {sandbox.dir}", flush=True)
    started = time.monotonic()
    try:
        SCENARIOS[name](ctx)
    except GatewayCrashed as crash:
        result.fail(f"daemon crash: {crash}")
    except HarnessError as error:
        result.fail(f"harness: {error}")
    except Interrupted:
        result.fail("interrupted")
        raise
    except Exception:
        result.fail("scenario error:\n" + traceback.format_exc())
    finally:
        result.seconds = time.monotonic() - started
        # The daemon's own words, while its logs still exist (the sandbox goes away below).
        tails = [gw.log_tail(25) for gw in ctx.gateways if gw.log] if result.failures else []
        # No second Ctrl-C in the middle of stopping what was started (it is delivered after).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            sandbox.close(keep=args.keep)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        if args.keep:
            print(f"   kept {sandbox.dir}")
    verdict = "PASS" if result.passed else "FAIL"
    print(f"== {name}: {verdict} in {result.seconds:.1f} s", flush=True)
    if not result.passed:
        for failure in result.failures:
            print("   FAIL: " + failure.replace("\n", "\n         "))
        for log_tail in tails:
            print("   " + log_tail.replace("\n", "\n   "))
    return result


def table(results: list[Result]) -> str:
    head = ["scenario", "cycles", "acked stored", "recv upstream", "lost", "duplicates", "order viol.", "seconds", "result"]
    rows = [[r.name, r.cycles, str(r.accepted), str(r.received), str(r.lost), str(r.duplicates),
             str(r.order_violations), f"{r.seconds:.1f}", "PASS" if r.passed else "FAIL"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(head), line(["-" * w for w in widths])] + [line(row) for row in rows]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for name, fn in SCENARIOS.items():
            print(f"{name}:\n    " + "\n    ".join(line.strip() for line in (fn.__doc__ or "").strip().splitlines()))
        print("\nparts for --skip: " + ", ".join(PARTS))
        return 0
    names = list(SCENARIOS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
    unknown_parts = {p.strip() for p in args.skip.split(",") if p.strip()} - set(PARTS)
    if unknown_parts:
        print(f"unknown part(s) for --skip {sorted(unknown_parts)}; known: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if not (os.path.isfile(args.gateway) and os.access(args.gateway, os.X_OK)):
        print(f"edge-gateway binary not found at {args.gateway}; build it or pass --gateway / EDGE_GATEWAY_BIN",
              file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    root = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    print(f"faults: seed {seed} (rerun with --seed {seed}), gateway {args.gateway}", flush=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    results: list[Result] = []
    started = time.monotonic()
    try:
        for name in names:
            results.append(run_scenario(name, args, seed, root))
    except Interrupted:
        print("\nfaults: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    total = time.monotonic() - started
    print()
    print(table(results))
    print(f"\ntotal {total:.1f} s, seed {seed}")
    for r in results:
        if r.notes:
            print(f"\n{r.name}:")
            for note in r.notes:
                print(f"  - {note}")
    failed = [r.name for r in results if not r.passed]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    return 0
