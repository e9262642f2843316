"""The fleet simulation behind scripts/fleet (see its docstring for what a run does).

Reuses the fault suite's harness: ``Sandbox`` (every child in its own session, all killed on close),
``Mosquitto``, ``Gateway``, the simulated ``Device`` (re-sends until acked) and ``check_delivery``.
Connects at the cluster are read from the NATS nodes' monitoring endpoint: ``/connz?state=all`` lists
every connection since the node started with its start time, so the connects-per-second histogram
after a restart is exact; ``/varz`` is polled for the live view.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from Faults.checks import check_delivery
from Faults.clients import Device, EventState, UpstreamRecorder
from Faults.procs import (Gateway, HarnessError, Mosquitto, Sandbox, accepts_connections, free_port,
                          tail, to_yaml, wait_until)

ROOT = Path(__file__).resolve().parent.parent.parent
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"
HUB_UPSTREAM = "edge-gateway-{hub}-upstream"   # the daemon's default upstream.clientId
SUBSCRIBER_ID = "fleet-subscriber"


_ports_given: set[int] = set()


def unique_port() -> int:
    """A free loopback port not handed out before in this run (free_port alone may repeat one across
    the ~200 ports of a large fleet)."""
    while True:
        port = free_port()
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def say(text: str = "") -> None:
    print(text, flush=True)


def http_json(port: int, path: str, timeout: float = 2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def parse_time(text: str) -> float:
    """NATS' RFC 3339 times with nanoseconds -> epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        raise ValueError(text)
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


def cpu_seconds(pid: int | None) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def rss_kb(pid: int | None) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---- the NATS cluster ------------------------------------------------------------------------------


class NatsNode:
    def __init__(self, sandbox: Sandbox, index: int, cluster_ports: list[int]):
        self.sandbox = sandbox
        self.name = f"n{index + 1}"
        self.client_port, self.mqtt_port, self.http_port = unique_port(), unique_port(), unique_port()
        self.cluster_port = cluster_ports[index]
        self.dir = sandbox.mkdir(f"nats-{self.name}")
        self.config = self.dir / "nats.conf"
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in cluster_ports)
        self.config.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.dir / "js"}" }}\n'
            f"cluster {{ name: fleet, listen: 127.0.0.1:{self.cluster_port}, routes: [{routes}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: 3 }}\n")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.starts += 1
        self.proc = self.sandbox.spawn([NATS, "-c", str(self.config)], self.dir / f"nats-{self.starts}.log")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def meta_leader(self) -> str:
        try:
            return (http_json(self.http_port, "/jsz", 1).get("meta_cluster") or {}).get("leader") or ""
        except (OSError, ValueError):
            return ""

    def connections(self) -> list[dict]:
        """Every connection since this node started (open and closed), from /connz."""
        try:
            return http_json(self.http_port, "/connz?state=all&limit=100000", 5).get("connections") or []
        except (OSError, ValueError):
            return []

    def log_tail(self) -> str:
        return tail(self.dir / f"nats-{self.starts}.log", 20)


class NatsCluster:
    def __init__(self, sandbox: Sandbox):
        ports = [unique_port() for _ in range(3)]
        self.nodes = [NatsNode(sandbox, i, ports) for i in range(3)]

    def start(self, timeout: float = 60) -> float:
        """Starts every node at once; returns when each one answers with a JetStream meta leader and
        its MQTT listener accepts (seconds from the start)."""
        began = time.monotonic()
        for node in self.nodes:
            node.start()
        wait_until(lambda: all(n.meta_leader() and accepts_connections(n.mqtt_port) for n in self.nodes),
                   timeout, "the NATS cluster (a JetStream meta leader on every node, MQTT listening)",
                   interval=0.1, details=lambda: "\n".join(n.log_tail() for n in self.nodes))
        return time.monotonic() - began

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


# ---- hubs ---------------------------------------------------------------------------------------------


class FleetDevice(Device):
    """A ``Device`` without a thread of its own: ``Driver`` calls ``tick`` for every device."""

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def tick(self, now: float) -> None:
        to_send: list[bytes] = []
        with self.lock:
            outstanding = 0
            for state in self.events.values():
                if state.acked is not None:
                    continue
                outstanding += 1
                due = state.retry_at or state.last_sent + self.resend_after
                if now >= due and len(to_send) < 200:
                    state.last_sent, state.retry_at = now, 0.0
                    state.sends += 1
                    self.resends += 1
                    to_send.append(state.payload)
            if self.publishing.is_set() and not self.no_more_new:
                allowed = self._rate_base + int((now - self._rate_start) * self.rate) + 1
                while outstanding < self.window and self.next_seq <= allowed:
                    payload = self._payload(self.next_seq)
                    self.events[f"e{self.next_seq}"] = EventState(payload, now, now)
                    self.next_seq += 1
                    outstanding += 1
                    to_send.append(payload)
        for payload in to_send:
            self._publish(payload)


class Driver(threading.Thread):
    """One thread publishing and re-sending for every simulated device."""

    def __init__(self, devices: list[FleetDevice]):
        super().__init__(name="fleet-driver", daemon=True)
        self.devices = devices
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            for device in self.devices:
                device.tick(now)
            time.sleep(0.05)


class FleetGateway(Gateway):
    """The daemon with the fleet's settings: the daemon's own upstream defaults (reconnect base and
    cap, connect timeout) unless a run sets them, plus environment variables for settings that only
    a newer daemon knows."""

    def __init__(self, sandbox: Sandbox, binary: str, name: str, device_port: int, admin_port: int):
        super().__init__(sandbox, binary, device_port, 0, name=name)
        self.admin_port = admin_port
        self.extra_env: dict[str, str] = {}
        self.hub = name

    def configure(self, settings: dict[str, object], env: dict[str, str]) -> None:
        base = {k: v for k, v in self.settings.items()
                if not k.startswith("upstream.")}
        base.update({"hub.id": self.hub, "admin.port": self.admin_port})
        base.update(settings)
        self.settings = base
        self.config_file.write_text(to_yaml(base))
        self.extra_env = dict(env)

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(self.extra_env)
        return env

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return out
        for line in text.splitlines():
            if line.startswith(("gateway_upstream_connected", "gateway_outbox_depth",
                                "gateway_upstream_events_forwarded_total")):
                name = line.split("{", 1)[0].split(" ", 1)[0]
                try:
                    out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
                except ValueError:
                    pass
        return out


class Hub:
    def __init__(self, sandbox: Sandbox, binary: str, index: int, devices: int, rate: float):
        self.index = index
        self.name = f"fleet-h{index + 1:03d}"
        self.broker = Mosquitto(sandbox, self.name, port=unique_port())
        self.gateway = FleetGateway(sandbox, binary, self.name, self.broker.port, unique_port())
        self.devices = [FleetDevice(f"h{index + 1:03d}-d{k + 1}", self.broker.port, rate=rate / devices,
                                    window=50, resend_after=5.0) for k in range(devices)]
        self.client_id = HUB_UPSTREAM.format(hub=self.name)


class Subscriber(UpstreamRecorder):
    """The cloud consumer: QoS 1, clean session false, hubs/+/events/#, on one node."""

    def __init__(self, port: int):
        super().__init__(port, client_id=SUBSCRIBER_ID)
        self.client.on_connect = lambda c, u, f, rc: rc == 0 and c.subscribe("hubs/+/events/#", qos=1)


class Sampler(threading.Thread):
    """Every second: each gateway's link state and outbox depth (its /metrics)."""

    def __init__(self, hubs: list[Hub]):
        super().__init__(name="fleet-sampler", daemon=True)
        self.hubs = hubs
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.samples: list[tuple[float, str, dict[str, float]]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            for hub in self.hubs:
                if hub.gateway.running:
                    m = hub.gateway.metrics()
                    with self.lock:
                        self.samples.append((time.monotonic(), hub.name, m))
            self.stopping.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def since(self, t: float) -> list[tuple[float, str, dict[str, float]]]:
        with self.lock:
            return [s for s in self.samples if s[0] >= t]


# ---- capabilities of the daemon -------------------------------------------------------------------------


def accepts(binary: str, variable: str, value: str, key: str) -> bool:
    """Whether the daemon knows a setting: check-config with the variable set must succeed and list
    the key as coming from it (an older daemon ignores variables it does not know)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "HUB_", "MQTT_", "STORE_"))}
    env[variable] = value
    result = subprocess.run([binary, "check-config"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, timeout=30)
    if result.returncode != 0:
        return False
    return any(line.split()[:1] == [key] and variable in line for line in result.stdout.splitlines())


# ---- measurements ------------------------------------------------------------------------------------------


def connects_since(cluster: NatsCluster, since_wall: float, client_ids: set[str] | None = None) -> list[tuple[float, str, str]]:
    """(start time, mqtt client id, node) of the MQTT connections the cluster accepted since ``since_wall``
    (the subscriber excluded; ``client_ids``: only those)."""
    out = []
    for node in cluster.nodes:
        for c in node.connections():
            if c.get("type") != "mqtt":
                continue
            client = c.get("mqtt_client") or ""
            if client == SUBSCRIBER_ID or (client_ids is not None and client not in client_ids):
                continue
            try:
                start = parse_time(c["start"])
            except (KeyError, ValueError):
                continue
            if start >= since_wall:
                out.append((start, client, node.name))
    return sorted(out)


def closed_reasons(cluster: NatsCluster, since_wall: float, client_ids: set[str]) -> dict[str, int]:
    """Why the cluster closed hub connections it accepted since ``since_wall`` (NATS' ``reason``)."""
    out: Counter = Counter()
    for node in cluster.nodes:
        for c in node.connections():
            if c.get("type") != "mqtt" or not c.get("stop") or (c.get("mqtt_client") or "") not in client_ids:
                continue
            try:
                if parse_time(c["start"]) >= since_wall:
                    out[c.get("reason") or "?"] += 1
            except (KeyError, ValueError):
                pass
    return dict(out)


def open_since(cluster: NatsCluster) -> dict[str, float]:
    """Hub client id -> start time of its open connection (the latest when there are several)."""
    out: dict[str, float] = {}
    for node in cluster.nodes:
        for c in node.connections():
            if c.get("type") != "mqtt" or c.get("stop"):
                continue
            client = c.get("mqtt_client") or ""
            try:
                out[client] = max(out.get(client, 0.0), parse_time(c["start"]))
            except (KeyError, ValueError):
                pass
    return out


def open_nodes(cluster: NatsCluster) -> dict[str, str]:
    """Hub client id -> the node of its open connection (the latest when there are several)."""
    latest: dict[str, tuple[float, str]] = {}
    for node in cluster.nodes:
        for c in node.connections():
            if c.get("type") != "mqtt" or c.get("stop"):
                continue
            client = c.get("mqtt_client") or ""
            try:
                start = parse_time(c["start"])
            except (KeyError, ValueError):
                continue
            if start >= latest.get(client, (0.0, ""))[0]:
                latest[client] = (start, node.name)
    return {client: node for client, (start, node) in latest.items()}


def upstream_attempts(hubs: list["Hub"]) -> dict[str, float]:
    """The gateways' own count of upstream connect attempts, summed: gateway_upstream_connects_total by result."""
    out: dict[str, float] = {"ok": 0.0, "failed": 0.0}
    for hub in hubs:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{hub.gateway.admin_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            m = re.match(r'gateway_upstream_connects_total\{.*result="(\w+)".*\} ([0-9.e+]+)$', line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def histogram(connects: list[tuple[float, str, str]], origin: float) -> dict:
    per_second = Counter(int(t - origin) for t, _, _ in connects)
    per_100ms = Counter(int((t - origin) * 10) for t, _, _ in connects)
    return {
        "connects": len(connects),
        "peak_per_second": max(per_second.values(), default=0),
        "peak_per_100ms": max(per_100ms.values(), default=0),
        "first_s": round(connects[0][0] - origin, 2) if connects else None,
        "last_s": round(connects[-1][0] - origin, 2) if connects else None,
        "per_second": [per_second.get(i, 0) for i in range(0, (max(per_second) + 1) if per_second else 0)],
    }


def spread(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "max": None}
    values = sorted(values)
    return {"median": round(statistics.median(values), 2),
            "p90": round(values[min(len(values) - 1, int(len(values) * 0.9))], 2),
            "max": round(values[-1], 2)}


class Fleet:
    def __init__(self, args, sandbox: Sandbox, binary: str):
        self.args = args
        self.sandbox = sandbox
        self.binary = binary
        self.cluster = NatsCluster(sandbox)
        self.hubs = [Hub(sandbox, binary, i, args.devices_per_hub, args.rate) for i in range(args.hubs)]
        self.devices = [d for h in self.hubs for d in h.devices]
        self.driver = Driver(self.devices)
        self.sampler = Sampler(self.hubs)
        self.subscriber: Subscriber | None = None
        self.caps = {
            "hosts": accepts(binary, "UPSTREAM_HOSTS", "127.0.0.1:1,127.0.0.1:2", "upstream.hosts"),
            "hostOrder": accepts(binary, "UPSTREAM_HOST_ORDER", "random", "upstream.hostOrder"),
            "startJitterSeconds": accepts(binary, "UPSTREAM_START_JITTER_SECONDS", "5", "upstream.startJitterSeconds"),
            "minConnectedSeconds": accepts(binary, "UPSTREAM_MIN_CONNECTED_SECONDS", "10", "upstream.minConnectedSeconds"),
            "quickRetries": accepts(binary, "UPSTREAM_QUICK_RETRIES", "0", "upstream.quickRetries"),
        }
        # Settings of the current phase (node kill, flapping) on top of the run's.
        self.phase_env: dict[str, str] = {}
        self.phase_hosts: list[NatsNode] | None = None
        self.result: dict = {"capabilities": self.caps}

    # -- gateways --

    def gateway_settings(self, hub: Hub, cap_ms: int | None, start_jitter: float | None) -> tuple[dict, dict]:
        settings: dict[str, object] = {}
        env: dict[str, str] = {}
        home = hub.index % 3
        nodes = self.cluster.nodes
        if self.caps["hosts"] and self.phase_hosts is not None:
            env["UPSTREAM_HOSTS"] = ",".join(f"127.0.0.1:{n.mqtt_port}" for n in self.phase_hosts)
        elif self.caps["hosts"]:
            order = nodes[home:] + nodes[:home]
            env["UPSTREAM_HOSTS"] = ",".join(f"127.0.0.1:{n.mqtt_port}" for n in order)
            if self.args.host_order == "random" and self.caps["hostOrder"]:
                env["UPSTREAM_HOST_ORDER"] = "random"
        else:
            settings["upstream.host"] = "127.0.0.1"
            settings["upstream.port"] = nodes[home].mqtt_port
        if cap_ms is not None:
            settings["upstream.reconnectCapMs"] = cap_ms
        if self.args.min_connected is not None and self.caps["minConnectedSeconds"]:
            env["UPSTREAM_MIN_CONNECTED_SECONDS"] = f"{self.args.min_connected:g}"  # whole seconds
        if start_jitter and self.caps["startJitterSeconds"]:
            env["UPSTREAM_START_JITTER_SECONDS"] = f"{start_jitter:g}"  # whole seconds
        env.update(self.phase_env)
        return settings, env

    def start_gateways(self, cap_ms: int | None, start_jitter: float | None, label: str) -> dict:
        """(Re)starts every gateway at once; measures the cold start at the cluster."""
        for hub in self.hubs:
            if hub.gateway.running:
                hub.gateway.terminate(grace=30)
        for hub in self.hubs:
            hub.gateway.configure(*self.gateway_settings(hub, cap_ms, start_jitter))
        ids = {h.client_id for h in self.hubs}
        began_wall, began = time.time(), time.monotonic()
        for hub in self.hubs:
            hub.gateway.spawn()
        for hub in self.hubs:
            hub.gateway.wait_ready(timeout=120)
        ready = time.monotonic() - began
        timeout = 60 + (start_jitter or 0) * 2
        wait_until(lambda: ids <= set(open_since(self.cluster)), timeout,
                   f"every hub connected upstream ({label})", interval=0.5,
                   details=lambda: f"missing: {sorted(ids - set(open_since(self.cluster)))[:10]}")
        connects = connects_since(self.cluster, began_wall - 0.5, ids)
        opened = open_since(self.cluster)
        all_connected = max(opened[i] for i in ids) - began_wall
        result = {"label": label, "reconnectCapMs": cap_ms, "startJitterSeconds": start_jitter,
                  "all_ready_s": round(ready, 2), "all_connected_s": round(all_connected, 2),
                  "load": load(), **histogram(connects, began_wall)}
        return result

    # -- phases --

    def steady(self, seconds: float) -> dict:
        time.sleep(3)  # past the start-up
        arrivals_before = len(self.subscriber)
        gw = {h.name: cpu_seconds(h.gateway.pid) for h in self.hubs}
        br = {h.name: cpu_seconds(h.broker.proc.pid) for h in self.hubs}
        nats = sum(cpu_seconds(n.proc.pid) for n in self.cluster.nodes)
        own = sum(os.times()[:2])
        began = time.monotonic()
        rss: dict[str, list[int]] = defaultdict(list)
        while time.monotonic() - began < seconds:
            for h in self.hubs:
                rss[h.name].append(rss_kb(h.gateway.pid))
            time.sleep(min(2.0, max(0.1, seconds - (time.monotonic() - began))))
        elapsed = time.monotonic() - began
        snapshot = self.subscriber.snapshot()
        seen = {(x.device, x.event_id) for x in snapshot[:arrivals_before]}
        events = len({(x.device, x.event_id) for x in snapshot[arrivals_before:]} - seen)
        repeats = len(snapshot) - arrivals_before - events
        gw_cpu = [(cpu_seconds(h.gateway.pid) - gw[h.name]) / elapsed * 100 for h in self.hubs]
        br_cpu = [(cpu_seconds(h.broker.proc.pid) - br[h.name]) / elapsed * 100 for h in self.hubs]
        nats_cpu = (sum(cpu_seconds(n.proc.pid) for n in self.cluster.nodes) - nats) / elapsed * 100
        own_cpu = (sum(os.times()[:2]) - own) / elapsed * 100
        rss_max = [max(v) for v in rss.values()]
        return {
            "seconds": round(elapsed, 1), "upstream_events": events, "upstream_repeats": repeats,
            "events_per_s": round(events / elapsed, 1), "events_per_s_per_hub": round(events / elapsed / len(self.hubs), 2),
            "gateway_cpu_percent_per_hub": spread(gw_cpu), "gateway_cpu_percent_total": round(sum(gw_cpu), 1),
            "device_broker_cpu_percent_per_hub": spread(br_cpu),
            "nats_cpu_percent_total": round(nats_cpu, 1), "simulator_cpu_percent": round(own_cpu, 1),
            "gateway_rss_kb": spread([float(v) for v in rss_max]), "load": load(),
        }

    def outage(self, seconds: float, label: str) -> dict:
        ids = {h.client_id for h in self.hubs}
        killed = time.monotonic()
        self.cluster.kill()
        say(f"   cluster down (all 3 nodes SIGKILLed) for {seconds:g} s; devices keep sending")
        time.sleep(seconds)
        # Everything acked by now and not yet upstream is the backlog the hubs must deliver.
        arrived = {(a.device, a.event_id) for a in self.subscriber.snapshot()}
        backlog: dict[tuple[str, str], str] = {}
        for hub in self.hubs:
            for d in hub.devices:
                for eid in d.accepted:
                    if (d.id, eid) not in arrived:
                        backlog[(d.id, eid)] = hub.name
        depth_peak = {}
        for t, hub, m in self.sampler.since(killed):
            depth_peak[hub] = max(depth_peak.get(hub, 0), m.get("gateway_outbox_depth", 0))
        gateways_cpu_before = sum(cpu_seconds(h.gateway.pid) for h in self.hubs)
        up_wall, up = time.time(), time.monotonic()
        for node in self.cluster.nodes:
            node.start()
        say(f"   cluster restarted ({len(backlog)} acked events waiting in the hubs; load {load()})")

        def reconnected() -> bool:
            opened = open_since(self.cluster)
            return all(opened.get(i, 0) >= up_wall for i in ids)

        limit = 120 + (self.args_cap_s(label) * 2)
        wait_until(reconnected, limit, f"every hub reconnected ({label})", interval=0.5,
                   details=lambda: "\n".join(n.log_tail() for n in self.cluster.nodes))
        all_connected = max(open_since(self.cluster)[i] for i in ids) - up_wall

        def drained() -> bool:
            got = {(a.device, a.event_id) for a in self.subscriber.snapshot()}
            return all(k in got for k in backlog)

        wait_until(drained, limit, f"the backlog at the subscriber ({label})", interval=0.5)
        nats_cpu = sum(cpu_seconds(n.proc.pid) for n in self.cluster.nodes)  # since their restart
        gateways_cpu = sum(cpu_seconds(h.gateway.pid) for h in self.hubs) - gateways_cpu_before
        first_arrival: dict[tuple[str, str], float] = {}
        for a in self.subscriber.snapshot():
            first_arrival.setdefault((a.device, a.event_id), a.at)
        per_hub_done: dict[str, float] = defaultdict(float)
        for key, hub in backlog.items():
            per_hub_done[hub] = max(per_hub_done[hub], first_arrival[key] - up)
        connects = connects_since(self.cluster, up_wall, None)
        hub_connects = [c for c in connects if c[1] in ids]
        opened = open_since(self.cluster)
        # The daemon's own account, one line per hub when its link came back (ConnectFailureLog):
        # "MQTT broker reachable again after S s and N failed attempts".
        attempts, down_for = [], []
        for hub in self.hubs:
            lines = [line for line in hub.gateway.log_text().splitlines()
                     if "reachable again after" in line and "edge-gateway.upstream.mqtt" in line]
            m = re.search(r"after (\d+) s and (\d+) failed attempts", lines[-1]) if lines else None
            if m:
                down_for.append(float(m.group(1)))
                attempts.append(float(m.group(2)))
        per_node = Counter(node for start, client, node in connects_since(self.cluster, up_wall, ids)
                           if opened.get(client) == start)
        return {
            "label": label, "outage_s": seconds, "backlog_events": len(backlog),
            "outbox_depth_peak_per_hub": spread([float(v) for v in depth_peak.values()]),
            "all_reconnected_s": round(all_connected, 2),
            "drained_s": round(max(per_hub_done.values(), default=0.0), 2),
            "drained_per_hub_s": spread(list(per_hub_done.values())),
            "recovery_cpu_s": {"nats": round(nats_cpu, 1), "gateways": round(gateways_cpu, 1),
                               "wall": round(time.monotonic() - up, 1)},
            "hub_connects": len(hub_connects), "other_connects": len(connects) - len(hub_connects),
            "hub_connections_closed": closed_reasons(self.cluster, up_wall, ids),
            "hubs_per_node": dict(sorted(per_node.items())),
            "failed_attempts_per_hub": spread(attempts), "link_down_s_per_hub": spread(down_for),
            "load": load(),
            **{k: v for k, v in histogram(hub_connects, up_wall).items() if k != "connects"},
        }

    def wait_node_serving(self, node: NatsNode, timeout: float = 60) -> None:
        wait_until(lambda: node.meta_leader() and accepts_connections(node.mqtt_port), timeout,
                   f"node {node.name} back in the cluster", interval=0.1, details=node.log_tail)

    def node_kill(self, label: str) -> dict:
        """SIGKILL the node that serves the most hubs during traffic: how fast its hubs are on the other
        nodes, the connects per second the survivors take; then the node restarts (and who comes back to it)."""
        ids = {h.client_id for h in self.hubs}
        where = open_nodes(self.cluster)
        per_node = Counter(where.get(i, "?") for i in ids)
        victim = max(self.cluster.nodes, key=lambda n: per_node.get(n.name, 0))
        moved = {i for i in ids if where.get(i) == victim.name}
        before = upstream_attempts(self.hubs)
        kill_wall = time.time()
        victim.kill()
        say(f"   node {victim.name} SIGKILLed, it served {len(moved)} of {len(ids)} hubs ({dict(sorted(per_node.items()))})")

        def all_moved() -> bool:
            opened = open_since(self.cluster)  # the survivors only: the victim answers no more
            return all(opened.get(i, 0) >= kill_wall for i in moved)

        wait_until(all_moved, 120, f"the hubs of {victim.name} on other nodes ({label})", interval=0.2)
        opened = open_since(self.cluster)
        moved_s = [opened[i] - kill_wall for i in moved]
        connects = connects_since(self.cluster, kill_wall, ids)
        after = upstream_attempts(self.hubs)
        restart_wall = time.time()
        victim.start()
        self.wait_node_serving(victim)
        time.sleep(max(5.0, self.args.settle_seconds))
        back = [c for c in connects_since(self.cluster, restart_wall, ids) if c[2] == victim.name]
        return {
            "label": label, "node": victim.name, "hubs_on_node": len(moved), "hubs": len(ids),
            "all_moved_s": round(max(moved_s, default=0.0), 2), "moved_s_per_hub": spread(moved_s),
            "hub_connects": len(connects), "failed_attempts": int(after.get("failed", 0) - before.get("failed", 0)),
            "hub_connections_closed": closed_reasons(self.cluster, kill_wall, ids),
            "connects_to_restarted_node": len(back), "load": load(),
            **{k: v for k, v in histogram(connects, kill_wall).items() if k != "connects"},
        }

    def flapping(self, seconds: float, down_s: float, up_s: float, label: str) -> dict:
        """One node killed (SIGKILL) and restarted again and again for ``seconds``; the hubs know only
        that node in this phase (one address, like a load balancer in front of a crash-looping node).
        Counts the connects the node takes and the hubs' failed attempts."""
        node = self.phase_hosts[0]
        ids = {h.client_id for h in self.hubs}
        before = upstream_attempts(self.hubs)
        began_wall, began = time.time(), time.monotonic()
        cycles = 0
        all_connects: list[tuple[float, str, str]] = []
        while time.monotonic() - began < seconds:
            since = time.time()
            node.kill()  # its /connz goes with it: collect this life's connects first (below)
            cycles += 1
            time.sleep(down_s)
            node.start()
            life = time.time()
            wait_until(lambda: accepts_connections(node.mqtt_port), 30, f"{node.name} listening", interval=0.05)
            time.sleep(up_s)
            all_connects += [c for c in connects_since(self.cluster, life - 0.5, ids) if c[2] == node.name]
        elapsed = time.monotonic() - began
        after = upstream_attempts(self.hubs)
        self.wait_node_serving(node)
        per_cycle = Counter()
        for t, _, _ in all_connects:
            per_cycle[int((t - began_wall) // (down_s + up_s))] += 1
        return {
            "label": label, "node": node.name, "seconds": round(elapsed, 1), "cycles": cycles,
            "down_s": down_s, "up_s": up_s, "hub_connects": len(all_connects),
            "connects_per_s": round(len(all_connects) / elapsed, 2),
            "connects_per_cycle": [per_cycle.get(i, 0) for i in range(cycles)],
            "failed_attempts": int(after.get("failed", 0) - before.get("failed", 0)),
            "attempts_per_s": round((after.get("failed", 0) - before.get("failed", 0) + after.get("ok", 0) - before.get("ok", 0)) / elapsed, 2),
            "load": load(),
        }

    def args_cap_s(self, label: str) -> float:
        caps = [int(c) for c in self.args.caps.split(",") if c]
        return max(caps + [30000]) / 1000

    # -- the run --

    def run(self) -> int:
        a = self.args
        say(f"edge-gateway fleet — {datetime.now(timezone.utc):%Y-%m-%dT%H:%MZ}, {a.hubs} hubs x "
            f"{a.devices_per_hub} devices, {a.rate:g} events/s per hub, {os.cpu_count()} cores, load {load()}")
        say(f"   gateway: {self.binary} ({self.build_kind})")
        say("   daemon settings: " + ", ".join(f"{k} {'yes' if v else 'not available'}" for k, v in self.caps.items()))
        if not self.caps["hosts"]:
            say("   upstream.hosts not available: each gateway gets one node (upstream.port), spread over the 3")
        if a.min_connected is not None and not self.caps["minConnectedSeconds"]:
            say(f"   --min-connected {a.min_connected}: upstream.minConnectedSeconds not available "
                "(this daemon resets its backoff after a connection held 10 s)")
        took = self.cluster.start()
        say(f"== NATS cluster: 3 nodes up with a JetStream meta leader in {took:.1f} s "
            f"(MQTT ports {', '.join(str(n.mqtt_port) for n in self.cluster.nodes)})")
        self.subscriber = Subscriber(self.cluster.nodes[2].mqtt_port)
        self.subscriber.start(timeout=30)
        for hub in self.hubs:
            hub.broker.start()
        for d in self.devices:
            d.start()
        wait_until(lambda: all(d.connected.is_set() for d in self.devices), 120, "every device connected",
                   details=lambda: f"{sum(d.connected.is_set() for d in self.devices)} of {len(self.devices)} connected; "
                   + ", ".join(f"{d.id} (broker {h.broker.port} {'running' if h.broker.running else 'EXITED'})"
                               for h in self.hubs for d in h.devices if not d.connected.is_set())[:1500])

        caps = [int(c) for c in a.caps.split(",") if c]
        first_cap = caps[0] if caps else None
        cold = self.start_gateways(first_cap, None, "cold start")
        self.result["cold_start"] = [cold]
        say(f"== cold start, all {a.hubs} gateways at once: ready in {cold['all_ready_s']} s, all connected "
            f"upstream {cold['all_connected_s']} s after the spawn; peak {cold['peak_per_second']} connects/s "
            f"({cold['peak_per_100ms']} in 100 ms)")
        self.sampler.start()
        for d in self.devices:
            d.resume()
        self.driver.start()

        say(f"== steady state, {a.steady_seconds:g} s")
        st = self.steady(a.steady_seconds)
        self.result["steady"] = st
        say(f"   {st['events_per_s']} events/s upstream ({st['events_per_s_per_hub']} per hub; distinct events, "
            f"{st['upstream_repeats']} repeats besides); gateway CPU per hub "
            f"{st['gateway_cpu_percent_per_hub']['median']} % of a core (max {st['gateway_cpu_percent_per_hub']['max']}), "
            f"device mosquitto {st['device_broker_cpu_percent_per_hub']['median']} %; NATS (3 nodes) "
            f"{st['nats_cpu_percent_total']} %; simulator {st['simulator_cpu_percent']} %; gateway RSS "
            f"{st['gateway_rss_kb']['median']} kB (max {st['gateway_rss_kb']['max']}); load {st['load']}")

        self.result["outages"] = []
        for i, cap in enumerate(caps):
            label = f"reconnectCapMs {cap}"
            if i > 0:
                cs = self.start_gateways(cap, None, f"restart with {label}")
                self.result["cold_start"].append(cs)
                say(f"== gateways restarted with upstream.reconnectCapMs {cap}: all connected in "
                    f"{cs['all_connected_s']} s, peak {cs['peak_per_second']} connects/s")
                time.sleep(max(5.0, a.settle_seconds))
            say(f"== outage of the whole cluster, {label}")
            o = self.outage(a.outage_seconds, label)
            o["reconnectCapMs"] = cap
            self.result["outages"].append(o)
            say(f"   every hub reconnected {o['all_reconnected_s']} s after the restart; peak {o['peak_per_second']} "
                f"hub connects/s ({o['peak_per_100ms']} in 100 ms), {o['hub_connects']} hub connects in all, first at "
                f"{o['first_s']} s; backlog of {o['backlog_events']} events at the subscriber after {o['drained_s']} s "
                f"(per hub median {o['drained_per_hub_s']['median']} s); hubs per node afterwards {o['hubs_per_node']}; "
                f"failed connect attempts per hub during the outage {o['failed_attempts_per_hub']['median']} "
                f"(max {o['failed_attempts_per_hub']['max']}), {o['other_connects']} other connects at the cluster; hub connections the cluster closed: "
                f"{o['hub_connections_closed'] or 'none'}")

        first_cap = caps[0] if caps else None
        self.result["node_kills"] = []
        for q in [int(x) for x in a.node_kill.split(",") if x != ""]:
            if not self.caps["quickRetries"] and q != 2:
                say(f"== node kill with upstream.quickRetries {q}: not available in this daemon (skipped)")
                continue
            if not self.caps["hosts"]:
                say("== node kill: upstream.hosts not available in this daemon (skipped)")
                break
            label = f"quickRetries {q}"
            self.phase_env = {"UPSTREAM_QUICK_RETRIES": str(q)} if self.caps["quickRetries"] else {}
            cs = self.start_gateways(first_cap, None, f"restart with {label}")
            self.result["cold_start"].append(cs)
            time.sleep(max(5.0, a.settle_seconds))
            say(f"== one node SIGKILLed in a healthy cluster, {label}")
            k = self.node_kill(label)
            k["quickRetries"] = q
            self.result["node_kills"].append(k)
            say(f"   its {k['hubs_on_node']} hubs on other nodes after {k['all_moved_s']} s (per hub median "
                f"{k['moved_s_per_hub']['median']} s); {k['hub_connects']} connects at the survivors, peak "
                f"{k['peak_per_second']}/s ({k['peak_per_100ms']} in 100 ms), per second from the kill "
                f"{k['per_second']}; {k['failed_attempts']} failed attempts; hub connections closed {k['hub_connections_closed'] or 'none'}; "
                f"{k['connects_to_restarted_node']} hubs went back to the restarted node; load {k['load']}")
        self.phase_env = {}

        self.result["flapping"] = []
        for mc in [int(x) for x in a.flap.split(",") if x != ""]:
            if not (self.caps["minConnectedSeconds"] and self.caps["hosts"]):
                say("== flapping node: upstream.minConnectedSeconds or upstream.hosts not available (skipped)")
                break
            label = f"minConnectedSeconds {mc}"
            self.phase_env = {"UPSTREAM_MIN_CONNECTED_SECONDS": str(mc)}
            self.phase_hosts = [self.cluster.nodes[0]]
            cs = self.start_gateways(first_cap, None, f"restart with {label}, one address")
            self.result["cold_start"].append(cs)
            time.sleep(max(5.0, a.settle_seconds))
            say(f"== flapping node {self.phase_hosts[0].name} (down {a.flap_down:g} s, up {a.flap_up:g} s) for "
                f"{a.flap_seconds:g} s, {label}")
            f = self.flapping(a.flap_seconds, a.flap_down, a.flap_up, label)
            f["minConnectedSeconds"] = mc
            self.result["flapping"].append(f)
            say(f"   {f['cycles']} cycles: {f['hub_connects']} hub connects at the node ({f['connects_per_s']}/s), "
                f"per cycle {f['connects_per_cycle']}; {f['failed_attempts']} failed attempts by the hubs, "
                f"{f['attempts_per_s']} attempts/s in all; load {f['load']}")
        self.phase_env = {}
        if self.phase_hosts is not None:
            self.phase_hosts = None
            cs = self.start_gateways(first_cap, None, "restart with all three nodes")
            self.result["cold_start"].append(cs)

        if a.start_jitter:
            if self.caps["startJitterSeconds"]:
                cs = self.start_gateways(first_cap, a.start_jitter, f"cold start, startJitterSeconds {a.start_jitter:g}")
                self.result["cold_start"].append(cs)
                say(f"== cold start with upstream.startJitterSeconds {a.start_jitter:g}: all connected "
                    f"{cs['all_connected_s']} s after the spawn; peak {cs['peak_per_second']} connects/s "
                    f"({cs['peak_per_100ms']} in 100 ms)")
            else:
                say("== cold start with upstream.startJitterSeconds: not available in this daemon (skipped)")
                self.result["start_jitter"] = "not available"

        say("== end: devices stop; waiting until every event is acked and upstream")
        for d in self.devices:
            d.stop_new()
        wait_until(lambda: not any(d.unacked for d in self.devices), 120, "every event acked")
        accepted = {(d.id, e) for d in self.devices for e in d.accepted}
        wait_until(lambda: accepted <= {(x.device, x.event_id) for x in self.subscriber.snapshot()}, 120,
                   "every acked event at the subscriber")
        time.sleep(2)  # late repeats
        report = check_delivery(self.devices, self.subscriber.snapshot())
        self.result["delivery"] = {
            "published": report.published, "accepted": report.accepted, "received": report.received,
            "upstream_messages": report.upstream_messages, "duplicates": report.duplicates,
            "lost": len(report.lost), "order_violations": len(report.order_violations),
            "repeat_mismatches": len(report.repeat_mismatches), "phantoms": len(report.phantoms),
            "device_resends": sum(d.resends for d in self.devices),
            "examples": (report.lost[:5] + report.order_violations[:5]),
        }
        dv = self.result["delivery"]
        say(f"   {dv['accepted']} events acked to devices, {dv['received']} distinct at the subscriber "
            f"({dv['upstream_messages']} messages, {dv['duplicates']} repeats); lost {dv['lost']}; "
            f"per-device order violations {dv['order_violations']}; repeats differing {dv['repeat_mismatches']}")
        for p in report.problems:
            say(f"   problem: {p}")
        self.table()
        return 1 if report.lost else 0

    def table(self) -> None:
        say()
        say("   run                                   connects  peak/s  peak/100ms  all connected  backlog  drained")
        for c in self.result.get("cold_start", []):
            say(f"   {c['label'][:38]:<38} {c['connects']:>8} {c['peak_per_second']:>7} {c['peak_per_100ms']:>11} "
                f"{c['all_connected_s']:>12} s {'-':>8} {'-':>8}")
        for o in self.result.get("outages", []):
            say(f"   {'outage ' + str(o['outage_s']) + ' s, ' + o['label']:<38} {o['hub_connects']:>8} "
                f"{o['peak_per_second']:>7} {o['peak_per_100ms']:>11} {o['all_reconnected_s']:>12} s "
                f"{o['backlog_events']:>8} {o['drained_s']:>6} s")
        for k in self.result.get("node_kills", []):
            say(f"   {'node ' + k['node'] + ' killed, ' + k['label']:<38} {k['hub_connects']:>8} {k['peak_per_second']:>7} "
                f"{k['peak_per_100ms']:>11} {k['all_moved_s']:>12} s {'-':>8} {'-':>8}   failed attempts {k['failed_attempts']}")
        for f in self.result.get("flapping", []):
            say(f"   {'flapping ' + f['node'] + ', ' + f['label']:<38} {f['hub_connects']:>8} "
                f"{f['connects_per_s']:>5}/s {'-':>11} {'-':>14} {'-':>8} {'-':>8}   per cycle {f['connects_per_cycle']}, "
                f"failed attempts {f['failed_attempts']}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/fleet", description="Fleet simulation against a 3-node NATS cluster.")
    p.add_argument("--hubs", type=int, default=50)
    p.add_argument("--devices-per-hub", type=int, default=5)
    p.add_argument("--rate", type=float, default=2.0, help="events/s per hub")
    p.add_argument("--steady-seconds", type=float, default=30)
    p.add_argument("--outage-seconds", type=float, default=60)
    p.add_argument("--caps", default="30000,60000",
                   help="upstream.reconnectCapMs per outage run, comma-separated (30000 is the default)")
    p.add_argument("--start-jitter", type=float, default=10,
                   help="upstream.startJitterSeconds for the last cold start (0: skip), when the daemon has it")
    p.add_argument("--min-connected", type=float, default=None,
                   help="upstream.minConnectedSeconds, when the daemon has it")
    p.add_argument("--host-order", choices=["ordered", "random"], default="ordered",
                   help="with upstream.hosts: each hub's home node first (ordered) or upstream.hostOrder random")
    p.add_argument("--node-kill", default="",
                   help="upstream.quickRetries per run of one node SIGKILLed in a healthy cluster, comma-separated "
                        "(e.g. 2,0; empty: none)")
    p.add_argument("--flap", default="",
                   help="upstream.minConnectedSeconds per run of a flapping node, comma-separated (e.g. 10,0; empty: none)")
    p.add_argument("--flap-seconds", type=float, default=60, help="how long a node flaps")
    p.add_argument("--flap-down", type=float, default=2, help="seconds down per flap")
    p.add_argument("--flap-up", type=float, default=4, help="seconds up per flap")
    p.add_argument("--settle-seconds", type=float, default=10, help="after a restart of the gateways, before an outage")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 hubs, 10 s steady, 15 s outage, caps 30000")
    p.add_argument("--gateway", default=os.environ.get("EDGE_GATEWAY_BIN"))
    p.add_argument("--json", default=str(ROOT / "var" / "fleet-result.json"))
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.quick:
        args.hubs, args.steady_seconds, args.outage_seconds = 10, 10, 15
        if args.caps == "30000,60000":
            args.caps = "30000"
        args.settle_seconds = 5
        if args.start_jitter == 10:
            args.start_jitter = 5
    if args.gateway:
        binary, kind = args.gateway, "given"
    elif (ROOT / ".build/release/edge-gateway").exists():
        binary, kind = str(ROOT / ".build/release/edge-gateway"), "release build"
    elif (ROOT / ".build/debug/edge-gateway").exists():
        binary, kind = str(ROOT / ".build/debug/edge-gateway"), "DEBUG build: no release build found, CPU figures are not representative"
    else:
        print("fleet: no edge-gateway binary (swift build -c release)", file=sys.stderr)
        return 2
    # paho-mqtt 1.x waits with select(), which takes no descriptor above 1023, and every client holds
    # three (its socket and a socket pair to wake its thread): about 300 devices per process.
    if args.hubs * args.devices_per_hub > 300:
        print(f"fleet: {args.hubs} hubs x {args.devices_per_hub} devices is more than the 300 simulated devices "
              "one paho-mqtt 1.x process can hold (select() limit); use fewer --devices-per-hub "
              "(the events/s per hub stay --rate)", file=sys.stderr)
        return 2
    for tool in (NATS, "mosquitto"):
        if not shutil.which(tool) and not Path(tool).exists():
            print(f"fleet: {tool} missing (scripts/setup)", file=sys.stderr)
            return 2

    root = Path(os.environ.get("TMPDIR", "/tmp"))
    sandbox = Sandbox(root, "edge-gateway-fleet")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    fleet = None
    code = 1
    try:
        fleet = Fleet(args, sandbox, binary)
        fleet.build_kind = kind
        fleet.result["settings"] = {k: v for k, v in vars(args).items()}
        fleet.result["gateway"] = {"binary": binary, "kind": kind}
        code = fleet.run()
    except KeyboardInterrupt:
        print("fleet: interrupted", file=sys.stderr)
        code = 130
    except HarnessError as error:
        print(f"fleet: {error}", file=sys.stderr)
        code = 1
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        if fleet is not None:
            fleet.driver.stopping.set()
            fleet.sampler.stopping.set()
            fleet.result["exit"] = code
            fleet.result["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            try:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(fleet.result, indent=2) + "\n")
                say(f"   result: {args.json}")
            except OSError as error:
                print(f"fleet: cannot write {args.json}: {error}", file=sys.stderr)
            # The devices' network threads are daemon threads: stopping 500 of them one by one takes
            # minutes (each waits for its select timeout); the brokers go away with the sandbox.
            if fleet.subscriber is not None:
                fleet.subscriber.close()
        sandbox.close(keep=args.keep)
        if args.keep:
            say(f"   kept {sandbox.dir}")
    return code
