"""The fault scenarios. Each is a function ``(ctx) -> None`` that fills ``ctx.result``.

Every scenario gets its own sandbox (temporary directory, brokers on fresh ports, its own store),
drives the real daemon and real mosquitto brokers, and ends with the same delivery check
(checks.py): devices stop publishing new events but keep resending until every event is acked
``stored``/``duplicate``; the outbox drains; then lost / duplicates / order violations are counted.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt

from . import hostile
from .command_scenarios import commands_in_flight
from .checks import DeliveryReport, check_delivery
from .clients import AckListener, Arrival, Fleet, UpstreamRecorder
from .fakebroker import SilentServer, SlowBroker
from .procs import Gateway, HarnessError, Mosquitto, Sandbox, free_port, wait_until

# ---------------------------------------------------------------------------------------------
# Shared pieces


@dataclass
class Result:
    name: str
    cycles: str = "-"
    accepted: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    order_violations: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def absorb(self, report: DeliveryReport, label: str = "") -> None:
        self.accepted += report.accepted
        self.received += report.received
        self.lost += len(report.lost)
        self.duplicates += report.duplicates
        self.order_violations += len(report.order_violations)
        self.failures += report.problems
        ranks = (f" ({report.stored_acks} with a `stored` ack, {report.unranked} only `duplicate`)"
                 if report.stored_acks else "")
        prefix = f"{label}: " if label else ""
        self.note(f"{prefix}published {report.published}, acked stored/duplicate {report.accepted}{ranks}, "
                  f"upstream messages {report.upstream_messages} for {report.received} events")
        if report.expected_lost:
            self.note(f"{prefix}{len(report.expected_lost)} acked events gone as the scenario expects: "
                      f"{sorted(report.expected_lost)[:8]}")


# The slow-consumer scenario's bound on the daemon's RSS (--rss-limit-mb).
DEFAULT_RSS_LIMIT_MB = 64.0


@dataclass
class Context:
    sandbox: Sandbox
    rng: random.Random
    quick: bool
    binary: str
    result: Result
    verbose: bool = False
    rss_limit_mb: float = DEFAULT_RSS_LIMIT_MB
    tmpfs_mb: int = 1
    skip: frozenset[str] = frozenset()
    started: float = field(default_factory=time.monotonic)
    gateways: list[Gateway] = field(default_factory=list)   # for log tails on failure

    def log(self, message: str) -> None:
        print(f"  [{self.result.name} {time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def pick(self, quick, full):
        return quick if self.quick else full

    def skipped(self, part: str) -> bool:
        """True (and noted) when ``--skip`` names this part of the current scenario."""
        if f"{self.result.name}/{part}" in self.skip:
            self.result.note(f"part '{part}' skipped (--skip)")
            return True
        return False


class Bed:
    """Device broker + upstream broker + upstream recorder, and gateways configured against them."""

    def __init__(self, ctx: Context, name: str, upstream_port: int | None = None):
        self.ctx = ctx
        self.name = name
        self.device = Mosquitto(ctx.sandbox, f"{name}-device")
        self.device.start()
        self.upstream = Mosquitto(ctx.sandbox, f"{name}-upstream", port=upstream_port)
        self.upstream.start()
        self.recorder = UpstreamRecorder(self.upstream.port, client_id=f"faults-recorder-{name}")
        self.recorder.start()
        ctx.sandbox.on_close(self.recorder.close)

    def gateway(self, **overrides) -> Gateway:
        gw = Gateway(self.ctx.sandbox, self.ctx.binary, self.device.port, self.upstream.port,
                     overrides, name=f"gateway-{self.name}")
        self.ctx.gateways.append(gw)
        return gw

    def fleet(self, prefix: str, count: int, **options) -> Fleet:
        fleet = Fleet(prefix, count, self.device.port, **options)
        self.ctx.sandbox.on_close(fleet.close)
        return fleet


def _keys(arrivals: list[Arrival]) -> set[tuple[str, str]]:
    return {(a.device, a.event_id) for a in arrivals}


def settle(ctx: Context, fleet: Fleet, gw: Gateway, arrivals: Callable[[], list[Arrival]], *,
           ack_timeout: float = 60, drain_timeout: float = 60, stuck: bool = False, label: str = "") -> None:
    """Devices stop publishing new events and resend until all are acked; the outbox drains; every
    accepted event has had the time to reach the upstream side. Timeouts become failures (the
    check that follows says what is missing), or only notes with ``stuck`` (a failure already
    recorded explains them)."""
    fleet.stop_new()
    prefix = f"{label}: " if label else ""

    def complain(error: HarnessError) -> None:
        if stuck:
            ctx.result.note(prefix + str(error).splitlines()[0])
        else:
            ctx.result.fail(prefix + str(error))

    def all_acked() -> bool:
        gw.check_alive()
        return not fleet.unacked()

    try:
        wait_until(all_acked, ack_timeout, "every event acked stored/duplicate", interval=0.2,
                   details=lambda: f"unacked: { {k: v[:5] for k, v in fleet.unacked().items()} }"
                                   + ("" if stuck else f"\n{gw.log_tail()}"))
    except HarnessError as error:
        complain(error)
    try:
        gw.wait_drained(drain_timeout)
    except HarnessError as error:
        complain(error)
    wait_for_arrivals({(d.id, eid) for d in fleet for eid in d.accepted}, arrivals)


def wait_for_arrivals(wanted: set[tuple[str, str]], arrivals: Callable[[], list[Arrival]],
                      quiet: float = 3.0, timeout: float = 30.0) -> None:
    """Waits until every wanted event arrived upstream, or nothing new arrived for ``quiet``
    seconds (the outbox is drained by then: what is missing is missing; the check names it);
    then a moment more, so late repeats are counted too."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        current = arrivals()
        if wanted <= _keys(current):
            break
        if len(current) != last_count:
            last_count, last_change = len(current), time.monotonic()
        elif time.monotonic() - last_change > quiet:
            break
        time.sleep(0.25)
    time.sleep(0.5)


def conclude(ctx: Context, fleet: Fleet, arrivals: list[Arrival], gw: Gateway | None = None, *,
             stuck: bool = False, label: str = "", **check) -> DeliveryReport:
    """The delivery check; with ``stuck`` events never acked are noted, not failed (the failure
    that made the store stop accepting is already recorded). Lost events always fail."""
    report = check_delivery(fleet.devices, arrivals, **check)
    if stuck and report.unacked:
        ctx.result.note(f"{label}: {len(report.unacked)} events never acked (the store stopped accepting)")
        report.unacked = []
    ctx.result.absorb(report, label)
    ctx.result.note((f"{label}: " if label else "") + f"device resends {fleet.resends}"
                    + (f", gateway runs {gw.runs}" if gw is not None else ""))
    return report


def _count_in_log(gw: Gateway, text: str) -> int:
    return gw.log_text().count(text)


# ---------------------------------------------------------------------------------------------
# crash-loop


def crash_loop(ctx: Context) -> None:
    """SIGKILL the daemon at random moments, during ingest and during drain, and restart it on the
    same store, while devices keep publishing and resending.

    Odd cycles ("ingest"): kill after a random 0.05-1.5 s of normal operation; one in five of
    these is a SIGTERM followed by SIGKILL 0-300 ms later if it is still shutting down (systemd's
    stop timeout, compressed), where an exit on its own must be status 0. After any cycle, one
    start-up in eight is itself killed within 0-150 ms, before it is ready. Even cycles ("drain"):
    the upstream broker is stopped while devices go on publishing (a backlog builds in the
    outbox), then started again, and the daemon is killed once the upstream recorder has seen a
    random fraction of that backlog arrive: mid-drain, with removals of forwarded events
    possibly not yet committed."""
    cycles = ctx.pick(3, 50)
    ctx.result.cycles = str(cycles)
    bed = Bed(ctx, "crash")
    gw = bed.gateway()
    gw.start()
    fleet = bed.fleet("crash", 4, rate=ctx.pick(40, 30), window=40, resend_after=2.0)
    fleet.start()
    kinds = {"ingest": 0, "ingest SIGTERM+SIGKILL": 0, "drain": 0,
             "drain before the whole backlog had arrived": 0, "start-up": 0}
    for cycle in range(1, cycles + 1):
        if cycle % 2 == 1 and ctx.rng.random() < 0.2:
            delay = ctx.rng.uniform(0.05, 1.5)
            time.sleep(delay)
            grace = ctx.rng.uniform(0.0, 0.3)
            code = gw.terminate_then_kill(grace)
            kinds["ingest SIGTERM+SIGKILL"] += 1
            what = f"ingest SIGTERM after {delay:.2f} s, SIGKILL {grace * 1000:.0f} ms later: " + \
                ("still running, killed" if code is None else f"had exited with status {code}")
            if code not in (None, 0):
                ctx.result.fail(f"cycle {cycle}: exit status {code} after SIGTERM\n{gw.log_tail()}")
        elif cycle % 2 == 1:
            delay = ctx.rng.uniform(0.05, 1.5)
            time.sleep(delay)
            gw.kill()
            kinds["ingest"] += 1
            what = f"ingest kill after {delay:.2f} s"
        else:
            bed.upstream.stop()
            build = ctx.rng.uniform(0.3, 1.0)
            time.sleep(build)
            gw.check_alive()
            backlog = gw.stats()["depth"]
            fraction = ctx.rng.uniform(0.05, 0.9)
            before = len(bed.recorder)
            bed.upstream.start()
            try:
                wait_until(lambda: len(bed.recorder) - before >= fraction * backlog, 5,
                           "part of the backlog upstream", interval=0.005)
            except HarnessError:
                pass
            arrived = len(bed.recorder) - before
            gw.kill()
            kinds["drain"] += 1
            if arrived < backlog:
                kinds["drain before the whole backlog had arrived"] += 1
            what = f"drain kill: backlog {backlog}, {arrived} had arrived upstream"
        if ctx.rng.random() < 1 / 8:
            gw.spawn()
            early = ctx.rng.uniform(0.0, 0.15)
            time.sleep(early)
            gw.kill()
            kinds["start-up"] += 1
            what += f"; start-up killed after {early * 1000:.0f} ms"
        gw.start()
        if ctx.verbose or cycle % 10 == 0 or cycles <= 5:
            ctx.log(f"cycle {cycle}/{cycles}: {what}; {fleet.accepted}/{fleet.published} acked")
    ctx.result.note("kills: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    settle(ctx, fleet, gw, bed.recorder.snapshot)
    conclude(ctx, fleet, bed.recorder.snapshot(), gw)
    gw.check_alive()


# ---------------------------------------------------------------------------------------------
# upstream-outages


def upstream_outages(ctx: Context) -> None:
    """Stop and start the upstream broker (SIGTERM: it keeps what it accepted) while devices
    publish; then, once, put a server on the upstream port that accepts TCP and never answers
    CONNECT: the daemon must give up after upstream.connectTimeoutSeconds (2 s here), keep
    storing and acking, and drain in order once the real broker is back."""
    cycles = ctx.pick(2, 20)
    ctx.result.cycles = f"{cycles}+silent"
    bed = Bed(ctx, "outage")
    gw = bed.gateway(**{"upstream.connectTimeoutSeconds": 2})
    gw.start()
    pid = gw.pid
    fleet = bed.fleet("outage", 4, rate=30, window=50, resend_after=3.0)
    fleet.start()
    for cycle in range(1, cycles + 1):
        up = ctx.rng.uniform(0.3, 1.5)
        time.sleep(up)
        bed.upstream.stop()
        down = ctx.rng.uniform(0.2, 1.5)
        time.sleep(down)
        bed.upstream.start()
        gw.check_alive()
        if ctx.verbose or cycle % 5 == 0 or cycles <= 5:
            ctx.log(f"outage {cycle}/{cycles}: up {up:.2f} s, down {down:.2f} s; "
                    f"{fleet.accepted}/{fleet.published} acked")

    # The silent upstream.
    time.sleep(0.5)
    bed.upstream.stop()
    silent = SilentServer(bed.upstream.port)
    ctx.sandbox.on_close(silent.stop)
    hold = 8.0
    log_before = _count_in_log(gw, "no CONNACK within")
    t0 = time.monotonic()
    published_before = fleet.published
    time.sleep(hold)
    stored_during = fleet.stored_acks_since(t0 + 0.5)
    published_during = fleet.published - published_before
    timeouts = _count_in_log(gw, "no CONNACK within") - log_before
    # The daemon's own attempts (its upstream client id is in each CONNECT): the log says the first
    # failure of a streak at error and the retries at debug, so the server counts them.
    attempts = silent.connections_from(b"-upstream")
    silent.stop()
    bed.upstream.start()
    ctx.log(f"silent upstream for {hold:.0f} s: {silent.connections} TCP connections, {attempts} of them "
            f"the daemon's, {timeouts} 'no CONNACK within' in the log, {stored_during} stored acks "
            f"for {published_during} events published meanwhile")
    ctx.result.note(f"silent upstream {hold:.0f} s: {silent.connections} connections (daemon and recorder), "
                    f"{attempts} by the daemon, {timeouts}x 'no CONNACK within' logged, "
                    f"{stored_during} events stored meanwhile")
    if attempts < 2:
        ctx.result.fail(f"the daemon connected {attempts} times to the silent upstream in {hold:.0f} s "
                        "with connectTimeoutSeconds 2 (expected at least 2: it must give up on a "
                        "connection without CONNACK and try again)")
    if timeouts < 1:
        ctx.result.fail("the daemon never logged 'no CONNACK within' for the silent upstream")
    if stored_during < 0.7 * published_during:
        ctx.result.fail(f"ingest stalled behind the silent upstream: {stored_during} stored acks "
                        f"for {published_during} events published")
    settle(ctx, fleet, gw, bed.recorder.snapshot)
    conclude(ctx, fleet, bed.recorder.snapshot(), gw)
    gw.check_alive()
    if gw.pid != pid:
        ctx.result.fail("the daemon was restarted")


# ---------------------------------------------------------------------------------------------
# device-broker-restarts


def device_broker_restarts(ctx: Context) -> None:
    """Restart the local mosquitto under traffic (persistence on). Cycles alternate SIGKILL
    (whatever was not autosaved within 1 s is gone: devices resend) and SIGTERM (everything
    queued is kept). The same daemon process must reconnect, resubscribe and lose nothing it
    acked."""
    cycles = ctx.pick(1, 5)
    ctx.result.cycles = str(cycles)
    bed = Bed(ctx, "devbroker")
    gw = bed.gateway()
    gw.start()
    pid = gw.pid
    fleet = bed.fleet("devbroker", 4, rate=30, window=50, resend_after=2.0)
    fleet.start()
    subscribed = "edge-gateway.device.mqtt: MQTT subscribed"
    for cycle in range(1, cycles + 1):
        time.sleep(ctx.rng.uniform(0.8, 2.0))
        before = _count_in_log(gw, subscribed)
        how = "SIGKILL" if cycle % 2 == 1 else "SIGTERM"
        (bed.device.kill if how == "SIGKILL" else bed.device.stop)()
        down = ctx.rng.uniform(0.3, 1.2)
        time.sleep(down)
        bed.device.start()
        try:
            wait_until(lambda: _count_in_log(gw, subscribed) > before, 20, "the daemon to resubscribe",
                       details=gw.log_tail)
        except HarnessError as error:
            ctx.result.fail(str(error))
        gw.check_alive()
        ctx.log(f"restart {cycle}/{cycles}: {how}, down {down:.2f} s, resubscribed; "
                f"{fleet.accepted}/{fleet.published} acked")
    time.sleep(1.0)
    settle(ctx, fleet, gw, bed.recorder.snapshot)
    conclude(ctx, fleet, bed.recorder.snapshot(), gw)
    gw.check_alive()
    if gw.pid != pid:
        ctx.result.fail("the daemon was restarted")


# ---------------------------------------------------------------------------------------------
# disk-full


def _fill_and_recover(ctx: Context, bed: Bed, gw: Gateway, prefix: str, pad: int, label: str) -> None:
    """Upstream is down: devices fill the store until acks say `rejected` / `store full`; then the
    upstream comes back: forwarding frees space and events are stored again."""
    bed.upstream.stop()
    gw.start()
    pid = gw.pid
    fleet = bed.fleet(prefix, 3, rate=30, window=20, resend_after=3.0, pad=pad, store_full_backoff=1.0)
    fleet.start()
    try:
        wait_until(lambda: fleet.store_full >= 10, ctx.pick(60, 90), "'store full' rejections",
                   interval=0.1, details=gw.log_tail)
    except HarnessError as error:
        ctx.result.fail(f"{label}: {error}")
        fleet.stop_new()
        return
    gw.check_alive()
    full_stats = gw.stats()
    ctx.log(f"{label}: store full after {fleet.accepted} stored events "
            f"(outbox {full_stats['depth']} events, {full_stats['bytes']} bytes)")
    time.sleep(1.0)   # stay full for a moment, devices retrying
    t_up = time.monotonic()
    bed.upstream.start()
    recovered = True
    try:
        wait_until(lambda: fleet.stored_acks_since(t_up) >= 20, ctx.pick(15, 30),
                   "events stored again after the upstream came back",
                   interval=0.1)
        ctx.log(f"{label}: upstream back, storing again "
                f"({fleet.stored_acks_since(t_up)} stored in {time.monotonic() - t_up:.1f} s)")
    except HarnessError as error:
        recovered = False
        gw.check_alive()
        stats = gw.stats()
        files = {p.name: p.stat().st_size for p in sorted(gw.store_path.parent.iterdir())
                 if p.name.startswith(gw.store_path.name)}
        upstream_count = len(bed.recorder)
        ctx.result.fail(f"{label}: the store never recovered: {error}; the upstream is up and received "
                        f"{upstream_count} events, yet the outbox still holds {stats['depth']} events; files {files}; "
                        f"rejects counted {stats.get('rejects')}\n{gw.log_tail(8)}")
        ctx.log(f"{label}: NOT storing again after the upstream came back; outbox depth {stats['depth']}, "
                f"files {files}")
        # Does a restart (what systemd would do if the daemon exited) get it going again?
        code = gw.terminate()
        try:
            gw.start()
            t_restart = time.monotonic()
            wait_until(lambda: fleet.stored_acks_since(t_restart) >= 20, ctx.pick(10, 20), "events stored after a restart",
                       interval=0.1)
            ctx.result.note(f"{label}: after a restart (exit status {code}) events are stored again")
        except HarnessError as restart_error:
            ctx.result.note(f"{label}: a restart (exit status {code}) does not help either: "
                            f"{str(restart_error).splitlines()[0]}")
        pid = gw.pid
    time.sleep(ctx.pick(1.0, 3.0))
    settle(ctx, fleet, gw, bed.recorder.snapshot, ack_timeout=90 if recovered else 10,
           drain_timeout=60 if recovered else 5, stuck=not recovered, label=label)
    stats = gw.stats()
    counted = stats.get("rejects", {}).get("store full", 0)
    write_failures = _count_in_log(gw, "outbox write failed")
    ctx.result.note(f"{label}: {fleet.store_full} 'store full' acks seen by devices, "
                    f"{counted} counted in outbox stats; 'outbox write failed' (SQLITE_FULL path) "
                    f"logged {write_failures}x; drops {stats.get('drops')}")
    if any(stats.get("drops", {}).values()):
        ctx.result.fail(f"{label}: events were dropped: {stats.get('drops')}")
    if counted < 1:
        (ctx.result.fail if recovered else ctx.result.note)(
            f"{label}: no 'store full' reject counted in outbox stats: {stats.get('rejects')}")
    conclude(ctx, fleet, bed.recorder.snapshot(), gw, stuck=not recovered, label=label)
    gw.check_alive()
    if gw.pid != pid:
        ctx.result.fail(f"{label}: the daemon was restarted")
    code = gw.terminate()
    if code != 0:
        ctx.result.fail(f"{label}: exit status {code} on SIGTERM\n{gw.log_tail()}")


def _seen_rows(store: Path) -> int | None:
    """Rows of the dedup table, read with a read-only connection (safe beside the daemon)."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM seen").fetchone()[0]
    except sqlite3.Error:
        return None


# The daemon wants the file cap at least store.maxBytes; rejectNew so that, should the byte cap be
# reached before the file is full, nothing acked is evicted (dropOldest would evict).
FILE_CAP = {"store.maxFileBytes": 300_000, "store.maxBytes": 300_000, "store.whenFull": "rejectNew"}


def _keeps_storing_under_file_cap(ctx: Context) -> None:
    """Upstream up, so the outbox stays nearly empty, but the dedup memory (one row per event,
    kept store.dedupRetentionSeconds = 24 h, up to dedupMaxEntries = 500,000) lives in the same
    capped file. The store must go on storing: a rejection `store full` while the outbox is
    (nearly) empty, lasting 5 s, is a failure."""
    label = "maxFileBytes 300 KB, upstream up"
    target = ctx.pick(8000, 12000)
    bed = Bed(ctx, "dedupcap")
    gw = bed.gateway(**FILE_CAP)
    gw.start()
    fleet = bed.fleet("dedupcap", 4, rate=100, window=100, resend_after=3.0, store_full_backoff=1.0)
    fleet.start()
    stuck_since = None
    full_before = 0
    while fleet.published < target:
        time.sleep(0.5)
        gw.check_alive()
        depth = gw.stats()["depth"]
        full_now = fleet.store_full
        if full_now > full_before and depth < 50:
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since > 5:
                break
        else:
            stuck_since = None
        full_before = full_now
    if stuck_since is not None:
        stats = gw.stats()
        seen = _seen_rows(gw.store_path)
        ctx.result.fail(
            f"{label}: after {fleet.accepted} events stored and forwarded the outbox holds {stats['depth']} "
            f"events, yet every new event is rejected 'store full' ({fleet.store_full} so far): the dedup "
            f"table ({seen} rows) fills the capped file ({gw.store_path.stat().st_size} bytes)")
        ctx.log(f"{label}: stuck at 'store full' with an empty outbox after {fleet.accepted} events "
                f"(dedup table {seen} rows)")
        settle(ctx, fleet, gw, bed.recorder.snapshot, ack_timeout=5, drain_timeout=5, stuck=True, label=label)
    else:
        ctx.log(f"{label}: {fleet.published} events published, still storing")
        settle(ctx, fleet, gw, bed.recorder.snapshot)
    conclude(ctx, fleet, bed.recorder.snapshot(), gw, stuck=stuck_since is not None, label=label)


def disk_full(ctx: Context) -> None:
    """(1) store.maxFileBytes of 300 KB (SQLite max_page_count) with the upstream down: fill until
    `store full`, upstream back, stored again; (2) the same cap with the upstream up for thousands
    of events: the store must keep storing (the dedup memory shares the file); (3) when mounting
    works (root, not in a restricted container): the store on a small tmpfs (--tmpfs-mb, 1 MiB),
    so the file system itself runs out of space (ENOSPC), then the upstream comes back."""
    cycles = 1
    bed = Bed(ctx, "filecap")
    gw = bed.gateway(**FILE_CAP)
    _fill_and_recover(ctx, bed, gw, "filecap", pad=1500, label="maxFileBytes 300 KB")
    if not ctx.skipped("dedup-cap"):
        cycles += 1
        _keeps_storing_under_file_cap(ctx)

    if ctx.tmpfs_mb <= 0 or ctx.skipped("tmpfs"):
        ctx.result.cycles = str(cycles)
        return
    mount_point = ctx.sandbox.mkdir("tmpfs")
    mounted = os.system(f"mount -t tmpfs -o size={ctx.tmpfs_mb}m faults-tmpfs {mount_point} 2>/dev/null") == 0
    if not mounted:
        ctx.result.note("tmpfs part skipped: mounting a tmpfs is not possible here (needs root / CAP_SYS_ADMIN)")
    else:
        ctx.sandbox.mounts.append(mount_point)
        cycles += 1
        bed2 = Bed(ctx, "tmpfs")
        # The reserve (store.reserveBytes, 8 MiB by default) has to fit on the small file system.
        gw2 = bed2.gateway(**{"store.path": str(mount_point / "outbox.db"), "store.reserveBytes": 131072})
        _fill_and_recover(ctx, bed2, gw2, "tmpfs", pad=3000, label=f"{ctx.tmpfs_mb} MiB tmpfs")
    ctx.result.cycles = str(cycles)


# ---------------------------------------------------------------------------------------------
# corruption


def _quarantined(gw: Gateway) -> list[str]:
    return sorted(p.name for p in gw.store_path.parent.iterdir() if p.name.startswith(gw.store_path.name + ".corrupt-"))


def _wal_info(path: Path) -> tuple[int, int, int]:
    """(WAL size, page size, complete frames) of an SQLite WAL file."""
    size = path.stat().st_size if path.exists() else 0
    if size < 32:
        return size, 0, 0
    with open(path, "rb") as f:
        header = f.read(32)
    page_size = int.from_bytes(header[8:12], "big")
    return size, page_size, (size - 32) // (24 + page_size)


def corruption(ctx: Context) -> None:
    """Between runs: (a) the database file truncated to half, (b) overwritten with random bytes,
    (c) a torn WAL: the daemon is SIGKILLed mid-ingest (upstream down, so the events are only in
    the outbox, most in the WAL) and ``outbox.db-wal`` is cut in the middle of a frame.

    (a) and (b): the daemon is stopped with SIGTERM after the outbox drained (so nothing acked is
    only in the damaged file); the next start must move the file aside (``outbox.db.corrupt-*``),
    log it, come up on a fresh store and serve new events.
    (c): a torn WAL is not corruption: SQLite's recovery keeps the WAL up to the last intact
    commit frame before the cut and ignores the rest. What that guarantees, and what is asserted:
    no quarantine, the daemon comes up and serves; for each device the acked events that survive
    are a prefix of its store order (no holes); events acked in commits after the cut are gone
    (reported, not a failure: their bytes were destroyed). Everything acked after the restart
    must arrive."""
    ctx.result.cycles = "4"
    bed = Bed(ctx, "corrupt")
    # (a)-(c) are about the database and its WAL: without the event log (the default) every group
    # commits to them. (d) tears the event log itself.
    gw = bed.gateway(**{"store.eventLogBytes": 0})
    fleet = bed.fleet("corrupt", 3, rate=30, window=30, resend_after=2.0)
    gw.start()
    fleet.start()
    store = gw.store_path

    def run_until_drained(seconds: float) -> None:
        time.sleep(seconds)
        fleet.pause()
        wait_until(lambda: not fleet.unacked(), 30, "devices acked", details=gw.log_tail)
        gw.wait_drained(30)

    def restart_expecting_quarantine(label: str) -> None:
        before = _quarantined(gw)
        gw.start()
        after = _quarantined(gw)
        new = [name for name in after if name not in before]
        if not new:
            ctx.result.fail(f"{label}: no {store.name}.corrupt-* file after the start: {after}")
        if "outbox database is corrupt" not in gw.log_text():
            ctx.result.fail(f"{label}: the start did not log that the database is corrupt\n{gw.log_tail()}")
        ctx.log(f"{label}: up again on a fresh store, quarantined {new}")
        fleet.resume()

    # (a) truncated to half
    run_until_drained(ctx.pick(1.5, 3.0))
    code = gw.terminate()
    if code != 0:
        ctx.result.fail(f"SIGTERM exit status {code}")
    size = store.stat().st_size
    with open(store, "r+b") as f:
        f.truncate(size // 2)
    ctx.log(f"(a) truncated {store.name} from {size} to {size // 2} bytes")
    restart_expecting_quarantine("(a) truncated")

    # (b) random garbage
    run_until_drained(ctx.pick(1.5, 3.0))
    gw.terminate()
    size = store.stat().st_size
    store.write_bytes(ctx.rng.randbytes(max(size, 16384)))
    ctx.log(f"(b) overwrote {store.name} with {max(size, 16384)} random bytes")
    restart_expecting_quarantine("(b) garbage")

    # (c) torn WAL. A clean stop checkpoints and empties the WAL, so every frame in it after the
    # next start belongs to this part (and stays one generation: the kill comes well before
    # SQLite's automatic checkpoint at 1000 pages).
    run_until_drained(ctx.pick(1.0, 2.0))
    gw.terminate()
    bed.upstream.stop()
    c_start = time.monotonic()
    gw.start()
    fleet.resume()
    wal = Path(str(store) + "-wal")
    try:
        wait_until(lambda: _wal_info(wal)[2] >= 40, 30, "WAL frames to accumulate", interval=0.02)
    except HarnessError as error:
        ctx.result.fail(f"(c) {error}")
    time.sleep(ctx.rng.uniform(0.0, 0.3))
    gw.kill()                                       # mid-ingest: devices are publishing
    size, page_size, frames = _wal_info(wal)
    if frames >= 1000:
        ctx.result.note(f"(c) the WAL reached {frames} frames: an automatic checkpoint may have run")
    frame_size = 24 + page_size
    cut_frame = ctx.rng.randint(frames // 4, max(frames // 4, 3 * frames // 4))
    cut = 32 + cut_frame * frame_size + ctx.rng.randint(1, frame_size - 1)
    with open(wal, "r+b") as f:
        f.truncate(cut)
    quarantined_before = _quarantined(gw)
    time.sleep(0.3)            # acks the killed run had already published reach the devices
    boundary = time.monotonic()
    ctx.log(f"(c) killed mid-ingest; WAL {size} bytes = {frames} frames of {page_size} B pages; "
            f"cut inside frame {cut_frame} at byte {cut}")
    gw.start()
    if _quarantined(gw) != quarantined_before:
        ctx.result.fail(f"(c) a torn WAL made the daemon quarantine the store: {_quarantined(gw)}")
    bed.upstream.start()
    time.sleep(ctx.pick(1.5, 3.0))
    gw.check_alive()

    # Acked before the restart and gone: allowed only as the tail (in store order) of each device.
    settle(ctx, fleet, gw, bed.recorder.snapshot)
    arrivals = bed.recorder.snapshot()
    # Only events acked in part (c) before the restart can be behind the cut (earlier parts were
    # drained before it began).
    torn, holes = _lost_behind_cut(fleet, _keys(arrivals), c_start, boundary)
    if holes:
        ctx.result.fail(f"(c) survivors of the torn WAL are not a prefix of the store order: {holes[:5]}")
    report = conclude(ctx, fleet, arrivals, gw, expected_loss=torn)
    ctx.result.note(f"(c) acked events lost behind the WAL cut (expected): {len(report.expected_lost)}")
    gw.check_alive()
    gw.terminate()
    fleet.close()
    _torn_event_log(ctx)


def _lost_behind_cut(fleet, received: set[tuple[str, str]], start: float, boundary: float):
    """The events acked between `start` and `boundary` that did not arrive upstream, and the holes:
    a survivor stored after one that is gone (for each device the survivors must be a prefix of its
    store order)."""
    torn: set[tuple[str, str]] = set()
    holes = []
    for d in fleet:
        with d.lock:
            before = [(eid, s) for eid, s in d.events.items()
                      if s.acked_at is not None and start <= s.acked_at < boundary]
            ranked = sorted((d.stored_rank[eid], eid) for eid, _ in before if eid in d.stored_rank)
        missing_seen = None
        for _, eid in ranked:
            if (d.id, eid) in received:
                if missing_seen is not None:
                    holes.append(f"{d.id}: {eid} survived but {missing_seen} (stored before it) did not")
            elif missing_seen is None:
                missing_seen = eid
        torn |= {(d.id, eid) for eid, s in before if (d.id, eid) not in received}
    return torn, holes


def _torn_event_log(ctx: Context) -> None:
    """(d) a torn event log: the daemon (with store.eventLogBytes set) is SIGKILLed mid-ingest with the
    upstream down, so the acked events are in ``outbox.db-events`` and in no database commit; then
    the log is overwritten with zeros from a point inside its records (the bytes a power cut never
    wrote). The start must not quarantine anything, must put the intact records before the cut into
    the database, and for each device the survivors must be a prefix of its store order; events
    behind the cut are reported (their bytes were destroyed), everything acked after the restart
    must arrive."""
    bed = Bed(ctx, "tornlog")
    gw = bed.gateway(**{"store.eventLogBytes": 1048576})
    fleet = bed.fleet("tornlog", 3, rate=30, window=30, resend_after=2.0)
    store = gw.store_path
    log = Path(str(store) + "-events")
    bed.upstream.stop()
    d_start = time.monotonic()
    gw.start()
    fleet.start()
    try:
        wait_until(lambda: sum(len(d.stored_rank) for d in fleet) >= 40, 30, "events acked into the event log",
                   interval=0.05)
    except HarnessError as error:
        ctx.result.fail(f"(d) {error}")
    time.sleep(ctx.rng.uniform(0.0, 0.3))
    gw.kill()
    data = log.read_bytes()
    end = 4096
    while end + 8 <= len(data):
        length = int.from_bytes(data[end:end + 4], "little")
        if length == 0 or end + 8 + length > len(data):
            break
        end += 8 + length
    cut = ctx.rng.randint(4096 + (end - 4096) // 4, max(4096 + (end - 4096) // 4, 4096 + 3 * (end - 4096) // 4))
    with open(log, "r+b") as f:
        f.seek(cut)
        f.write(b"\0" * (end - cut))
    quarantined_before = _quarantined(gw)
    time.sleep(0.3)
    boundary = time.monotonic()
    ctx.log(f"(d) killed mid-ingest; event log records end at byte {end}; zeroed from byte {cut}")
    gw.start()
    if _quarantined(gw) != quarantined_before:
        ctx.result.fail(f"(d) a torn event log made the daemon quarantine the store: {_quarantined(gw)}")
    if "put events from the event log into the database" not in gw.log_text():
        ctx.result.fail(f"(d) the start did not put the event log's events into the database\n{gw.log_tail()}")
    bed.upstream.start()
    time.sleep(ctx.pick(1.5, 3.0))
    gw.check_alive()
    settle(ctx, fleet, gw, bed.recorder.snapshot)
    arrivals = bed.recorder.snapshot()
    torn, holes = _lost_behind_cut(fleet, _keys(arrivals), d_start, boundary)
    if holes:
        ctx.result.fail(f"(d) survivors of the torn event log are not a prefix of the store order: {holes[:5]}")
    report = conclude(ctx, fleet, arrivals, gw, expected_loss=torn)
    ctx.result.note(f"(d) acked events lost behind the event log cut (expected): {len(report.expected_lost)}")
    gw.check_alive()


# ---------------------------------------------------------------------------------------------
# hostile-input


def hostile_input(ctx: Context) -> None:
    """Thousands of generated hostile messages through the device broker (see hostile.py), then:
    same daemon process, a valid event still acked stored, every message on a valid device topic
    answered exactly as the oracle says, and the reject counters of `edge-gateway outbox stats`
    (persisted by the outbox: `rejects` by reason, plus `invalid device id` for messages whose
    topic has an invalid device id and so get no ack) at least the number of invalid messages
    sent; valid events among them arrive upstream with their fields intact."""
    count = ctx.pick(1000, 10_000)
    max_payload = 65536
    seed = ctx.rng.randrange(2**32)
    ctx.result.cycles = f"{count} msgs"
    ctx.result.note(f"hostile seed {seed}")
    bed = Bed(ctx, "hostile")
    gw = bed.gateway(**{"limits.maxPayloadBytes": max_payload})
    gw.start()
    pid = gw.pid
    listener = AckListener(bed.device.port)
    listener.start()
    ctx.sandbox.on_close(listener.close)
    before = gw.stats().get("rejects", {})

    messages = hostile.generate(random.Random(seed), count, max_payload)
    publisher = mqtt.Client(client_id="faults-hostile", clean_session=True, protocol=mqtt.MQTTv311)
    publisher.max_inflight_messages_set(100)
    publisher.max_queued_messages_set(0)
    disconnects = []
    publisher.on_disconnect = lambda c, u, rc: disconnects.append(rc)
    publisher.connect("127.0.0.1", bed.device.port, keepalive=60)
    publisher.loop_start()
    ctx.sandbox.on_close(publisher.loop_stop)
    t0 = time.monotonic()
    infos = [publisher.publish(m.topic, m.payload, qos=1) for m in messages]
    try:
        wait_until(lambda: all(i.is_published() for i in infos), 300, "the broker to accept every message",
                   interval=0.2)
    except HarnessError as error:
        ctx.result.fail(str(error))
    sent = [m for m, i in zip(messages, infos) if i.is_published()]
    ctx.log(f"published {len(sent)}/{len(messages)} messages in {time.monotonic() - t0:.1f} s "
            f"(seed {seed}, {len(disconnects)} disconnects)")
    if disconnects:
        ctx.result.note(f"the broker dropped the hostile publisher {len(disconnects)} times")

    # What the daemon must answer.
    expected_reasons: dict[str, int] = {}
    expected_acks: dict[str, dict[str, int]] = {}
    valid_keys: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for m in sent:
        expected_reasons[m.expected] = expected_reasons.get(m.expected, 0) + 1
        if m.device is None:
            continue
        if m.expected == hostile.VALID:
            status = "duplicate" if (m.device, m.event_id) in seen else "stored"
            seen.add((m.device, m.event_id))
            valid_keys.append((m.device, m.event_id))
        else:
            status = "rejected"
        per_device = expected_acks.setdefault(m.device, {})
        per_device[status] = per_device.get(status, 0) + 1
    answered = sum(sum(v.values()) for v in expected_acks.values())
    try:
        wait_until(lambda: len(listener) >= answered, 120, f"{answered} acks", interval=0.2,
                   details=gw.log_tail)
    except HarnessError as error:
        ctx.result.fail(str(error))
    gw.check_alive()

    # A valid event after all that.
    final = b'{"eventId":"after-hostile","type":"check","timestamp":1,"data":{"ok":true}}'
    publisher.publish("device/h-final/event", final, qos=1)
    try:
        wait_until(lambda: any(d == "h-final" and a and a.get("status") == "stored" for d, a, _ in listener.snapshot()),
                   20, "the valid event after the hostile input to be acked stored", details=gw.log_tail)
    except HarnessError as error:
        ctx.result.fail(str(error))
    publisher.disconnect()

    # Acks per device and status.
    got: dict[str, dict[str, int]] = {}
    accepted: dict[str, set[str]] = {}
    for device, ack, raw in listener.snapshot():
        if device == "h-final":
            continue
        status = ack.get("status") if isinstance(ack, dict) else f"unreadable {raw[:60]!r}"
        got.setdefault(device, {})
        got[device][status] = got[device].get(status, 0) + 1
        if status in ("stored", "duplicate"):
            accepted.setdefault(device, set()).add(ack.get("eventId"))
    if got != expected_acks:
        ctx.result.fail(f"acks by device and status differ from the oracle: got {got}, expected {expected_acks}")

    # Reject counters (persisted with the next commit; poll).
    invalid_on_valid_topics = sum(n for r, n in expected_reasons.items() if r not in (hostile.VALID, hostile.INVALID_DEVICE_ID))
    invalid_topics = expected_reasons.get(hostile.INVALID_DEVICE_ID, 0)
    counted: dict[str, int] = {}

    def delta() -> dict[str, int]:
        now = gw.stats().get("rejects", {})
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}

    def enough() -> bool:
        nonlocal counted
        counted = delta()
        payload_rejects = sum(v for k, v in counted.items() if k != hostile.INVALID_DEVICE_ID)
        return payload_rejects >= invalid_on_valid_topics and counted.get(hostile.INVALID_DEVICE_ID, 0) >= invalid_topics

    try:
        wait_until(enough, 20, "reject counters", interval=0.5)
    except HarnessError:
        pass
    payload_rejects = sum(v for k, v in counted.items() if k != hostile.INVALID_DEVICE_ID)
    expected_table = {k: v for k, v in sorted(expected_reasons.items()) if k != hostile.VALID}
    ctx.result.note(f"oracle: {len(valid_keys)} valid ({len(seen)} distinct), rejects {expected_table}")
    ctx.result.note(f"outbox stats rejects (this run): {dict(sorted(counted.items()))}")
    if payload_rejects < invalid_on_valid_topics:
        ctx.result.fail(f"rejects counted {payload_rejects} < {invalid_on_valid_topics} invalid messages "
                        f"sent to valid device topics")
    if counted.get(hostile.INVALID_DEVICE_ID, 0) < invalid_topics:
        ctx.result.fail(f"'invalid device id' counted {counted.get(hostile.INVALID_DEVICE_ID, 0)} < "
                        f"{invalid_topics} messages sent with an invalid device id")
    mismatched = {k: (counted.get(k, 0), v) for k, v in expected_table.items() if counted.get(k, 0) != v}
    mismatched.update({k: (v, 0) for k, v in counted.items() if k not in expected_table})
    if mismatched:
        ctx.result.fail(f"reject counters differ from the oracle (counted, expected): {mismatched}")

    if not gw.running or gw.pid != pid:
        ctx.result.fail("the daemon did not survive the hostile input (pid changed or exited)")

    # Valid events reach the upstream with their fields.
    try:
        gw.wait_drained(60)
    except HarnessError as error:
        ctx.result.fail(str(error))
    wait_for_arrivals({(d, e) for d, ids in accepted.items() for e in ids}, bed.recorder.snapshot)
    arrivals = [a for a in bed.recorder.snapshot() if a.device != "h-final"]
    published = {}
    for m in sent:
        if m.device and m.event_id:
            published.setdefault(m.device, set()).add(m.event_id)
    report = check_delivery([], arrivals, extra_accepted=accepted, extra_published=published)
    ctx.result.absorb(report)
    first_payload = {}
    for m in sent:
        if m.expected == hostile.VALID:
            first_payload.setdefault((m.device, m.event_id), m.parsed)
    field_problems = []
    for a in arrivals:
        sent_event = first_payload.get((a.device, a.event_id))
        if sent_event is None:
            continue
        envelope = hostile.parse(a.payload)
        if not isinstance(envelope, dict) or any(
                envelope.get(key) != sent_event.get(key) for key in ("eventId", "type", "timestamp", "data")):
            field_problems.append(f"{a.device}/{a.event_id}")
    if field_problems:
        ctx.result.fail(f"{len(field_problems)} upstream envelopes differ from what was sent: {field_problems[:5]}")


# ---------------------------------------------------------------------------------------------
# slow-consumer


def slow_consumer(ctx: Context) -> None:
    """An upstream that accepts but acks slowly (SlowBroker: PUBACK 50 ms after each PUBLISH, one
    at a time, so at most 20 events/s drain) while devices publish 100 events/s: ingest must keep
    acking at the device rate (every event of the phase acked within 1 s of its end, ack latency
    p99 under 1 s; the outbox absorbs the backlog) and the daemon's RSS must stay bounded (VmRSS
    sampled every 0.25 s, max under --rss-limit-mb). Then the real broker (fast acks) takes over
    the port and everything must arrive, in order."""
    seconds = ctx.pick(8.0, 30.0)
    ctx.result.cycles = f"{seconds:.0f}s slow"
    port = free_port()
    bed = Bed(ctx, "slow", upstream_port=port)
    # The recorder's persistent session is in the real broker's persistence; the slow broker
    # takes the port until the switch.
    bed.recorder.close()
    bed.upstream.stop()
    slow = SlowBroker(port, delay=0.05)
    slow.start()
    ctx.sandbox.on_close(slow.stop)

    gw = bed.gateway()
    gw.start()
    fleet = bed.fleet("slow", 4, rate=25, window=200, resend_after=5.0, pad=200)
    fleet.start()
    samples: list[int] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        gw.check_alive()
        rss = gw.rss_kb()
        if rss:
            samples.append(rss)
        time.sleep(0.25)
    t_end = time.monotonic()
    time.sleep(1.0)   # the last events of the phase get their acks
    latencies = []
    late = 0
    for d in fleet:
        with d.lock:
            for s in d.events.values():
                if t0 <= s.first_sent <= t_end:
                    if s.acked_at is None:
                        late += 1
                    else:
                        latencies.append(s.acked_at - s.first_sent)
    depth = gw.stats()["depth"]
    phase_events = len(latencies) + late
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 100 else max(latencies, default=0)
    rate = phase_events / (t_end - t0)
    ctx.log(f"slow phase: {phase_events} events published ({rate:.0f}/s), {late} not acked within 1 s of the end, "
            f"ack latency p50 {statistics.median(latencies) * 1000:.0f} ms p99 {p99 * 1000:.0f} ms; "
            f"slow broker got {len(slow)}; outbox backlog {depth}")
    max_mb = max(samples) / 1024
    first, last = samples[: len(samples) // 5 or 1], samples[-(len(samples) // 5 or 1):]
    growth = (statistics.mean(last) - statistics.mean(first)) / 1024
    ctx.log(f"RSS: min {min(samples) / 1024:.1f} MB, max {max_mb:.1f} MB, last fifth vs first fifth {growth:+.1f} MB")
    ctx.result.note(f"slow phase {seconds:.0f} s: {rate:.0f} events/s in, slow broker took {len(slow)}, "
                    f"backlog {depth}; ack p99 {p99 * 1000:.0f} ms; RSS max {max_mb:.1f} MB "
                    f"(growth {growth:+.1f} MB)")
    if late:
        ctx.result.fail(f"{late} events of the slow phase not acked within 1 s of its end: ingest did not keep up")
    if p99 > 1.0:
        ctx.result.fail(f"ack latency p99 {p99:.2f} s behind a slow upstream")
    if depth < 0.3 * (phase_events - len(slow)):
        ctx.result.note(f"the outbox backlog ({depth}) is smaller than expected: was the consumer slow?")
    if max_mb > ctx.rss_limit_mb:
        ctx.result.fail(f"RSS reached {max_mb:.1f} MB (limit {ctx.rss_limit_mb:.0f} MB)")

    # The real broker takes the port with the backlog still in the outbox (and up to
    # upstream.inflight publishes the slow broker took but never acked: sent again, repeats).
    fleet.stop_new()
    ctx.log(f"switching to the real broker with a backlog of {gw.stats()['depth']}")
    slow.stop()
    bed.upstream.start()
    recorder = UpstreamRecorder(port, client_id="faults-recorder-slow")
    recorder.start()
    ctx.sandbox.on_close(recorder.close)

    def arrivals() -> list[Arrival]:
        return slow.snapshot() + recorder.snapshot()

    settle(ctx, fleet, gw, arrivals)
    if slow.errors:
        ctx.result.fail(f"slow broker errors: {slow.errors[:3]}")
    conclude(ctx, fleet, arrivals(), gw)
    gw.check_alive()


SCENARIOS: dict[str, Callable[[Context], None]] = {
    "crash-loop": crash_loop,
    "upstream-outages": upstream_outages,
    "device-broker-restarts": device_broker_restarts,
    "disk-full": disk_full,
    "corruption": corruption,
    "hostile-input": hostile_input,
    "slow-consumer": slow_consumer,
    "commands-in-flight": commands_in_flight,
}
