#!/usr/bin/python3
"""Cloud → device commands through the gateway (CONTRACTS.md §5, §6) against one plain mosquitto hop,
for scripts/bench section 9. Python with Debian's paho-mqtt (as scripts/contract-commands) plays the
cloud and the devices, each device on its own connection; one process and one clock
(CLOCK_MONOTONIC) for every figure, and the same code for the gateway and the baseline.

    commands_bench.py latency    --cloud-port P --device-port Q [--admin-port A] [--devices 4] [--commands 1000] [--rate 20] [--plain]
    commands_bench.py throughput --cloud-port P --device-port Q [--admin-port A] [--devices 100] [--commands 2000] [--pid PID] [--plain]
    commands_bench.py catchup    --cloud-port P --device-port Q [--admin-port A] [--commands 1000] [--plain]

Gateway mode: the cloud publishes `hubs/{hub}/commands/{id}` (QoS 1) on the upstream broker (P) and
reads `hubs/{hub}/commands/+/status`; the devices announce themselves (`device/{id}/status`
`{"online": true}`, retained, with the offline will), take `device/{id}/command` on the device broker
(Q) and answer each command `accepted`, then `succeeded`. Presence is awaited on the admin API
(`GET /api/devices`, port A) and the gateway's upstream subscription by re-sending an invalid probe
command until its `rejected` comes back (nothing is stored for it).

--plain (the baseline; P = Q, one broker): the cloud publishes the same payloads on the same topics,
the devices subscribe to them directly and answer on `device/{id}/command/result`, which the cloud
reads as the baseline's "status": one broker hop each way.

latency     N commands paced at --rate per second, round robin over the devices (each answered before
            its next one comes): cloud publish → device receipt; prints n= p50_us= p99_us= max_us=
throughput  N commands published flat out, round robin over the devices: first cloud publish → the
            last `succeeded` upstream; prints n= seconds= rate= (and write_bytes= per command of
            --pid, /proc/PID/io, measured over the same span plus 1 s for the outbox's removals)
catchup     N commands queued for one offline device (announced `{"online": false}`; the baseline: a
            persistent session that disconnected); then it connects: connect → the Nth command
            received, and → the Nth `succeeded` upstream; prints n= seconds= done_seconds=

Every mode also prints order_violations=0 duplicates= (commands a device got again). Exit 1 when a
command is lost, a status is missing or a device got its commands out of order. No figure is
asserted on.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

HUB = "bench"


def now_ns() -> int:
    return time.monotonic_ns()


class Failure(Exception):
    pass


def wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.005)


def client(name: str, port: int, clean: bool = True, will: tuple[str, bytes] | None = None,
           subscribe: list[str] | None = None, on_message=None, start: bool = True) -> mqtt.Client:
    """A connected paho client (network thread running) whose subscriptions are acknowledged."""
    c = mqtt.Client(client_id=name, clean_session=clean, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(0)   # no client-side limit on QoS 1 in flight (0: unlimited)
    c.max_queued_messages_set(0)
    if will:
        c.will_set(will[0], will[1], qos=1, retain=True)
    subscribed = threading.Event()
    wanted = list(subscribe or [])

    def on_connect(cl, userdata, flags, rc):
        if wanted:
            cl.subscribe([(t, 1) for t in wanted])
        else:
            subscribed.set()

    c.on_connect = on_connect
    c.on_subscribe = lambda *a: subscribed.set()
    if on_message:
        c.on_message = on_message
    if not start:
        return c
    connect(c, port)
    if not subscribed.wait(10):
        raise Failure(f"{name}: not connected and subscribed on {port}")
    return c


def connect(c: mqtt.Client, port: int) -> None:
    """Connects and starts the network thread. TCP_NODELAY as the brokers, the gateway and the C tools:
    without it Nagle holds a publish that follows an unacknowledged one (results after a PUBACK)."""
    c.connect("127.0.0.1", port, keepalive=60)
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.loop_start()


def close(c: mqtt.Client) -> None:
    try:
        c.disconnect()
    except Exception:
        pass
    c.loop_stop()


class Rig:
    """The cloud and its bookkeeping; devices are added with ``device``."""

    def __init__(self, args):
        self.plain = args.plain
        self.args = args
        self.lock = threading.Lock()
        self.received: dict[str, int] = {}        # commandId -> first receipt (ns) at a device
        self.latency_ns: list[int] = []
        self.order: dict[str, list[str]] = {}     # device -> commandIds in the order received (first receipts)
        self.statuses: dict[str, set[str]] = {}   # commandId -> statuses seen by the cloud
        self.succeeded_ns: dict[str, int] = {}
        self.counts: dict[tuple[str, str], int] = {}  # (commandId up to its first "-", status) -> commands
        self.duplicates = 0                        # receipts of a command a device had already
        self.devices: list[mqtt.Client] = []
        status_topic = "device/+/command/result" if self.plain else f"hubs/{HUB}/commands/+/status"
        self.cloud = client(f"bench-cloud-{int(time.time() * 1000) % 100000}", args.cloud_port,
                            subscribe=[status_topic], on_message=self._status)

    def command_topic_cloud(self, device: str) -> str:
        return f"hubs/{HUB}/commands/{device}"

    def command_topic_device(self, device: str) -> str:
        return self.command_topic_cloud(device) if self.plain else f"device/{device}/command"

    def _status(self, cl, userdata, message) -> None:
        at = now_ns()
        try:
            value = json.loads(message.payload)
            command_id, status = value.get("commandId"), value.get("status")
        except (ValueError, AttributeError):
            return
        if not isinstance(command_id, str):
            return
        with self.lock:
            seen = self.statuses.setdefault(command_id, set())
            if status not in seen:
                seen.add(status)
                key = (command_id.split("-", 1)[0], status)
                self.counts[key] = self.counts.get(key, 0) + 1
            if status == "succeeded" and command_id not in self.succeeded_ns:
                self.succeeded_ns[command_id] = at

    def send(self, device: str, command_id: str, name: str = "bench", stamp: bool = True) -> None:
        params = {"t": now_ns()} if stamp else {}
        body = json.dumps({"commandId": command_id, "name": name, "params": params}, separators=(",", ":"))
        self.cloud.publish(self.command_topic_cloud(device), body, qos=1)

    def seen(self, command_id: str, status: str) -> bool:
        with self.lock:
            return status in self.statuses.get(command_id, ())

    def count(self, status: str, prefix: str) -> int:
        """Commands whose id starts with ``prefix`` ("t-": t-0, t-1, ...) that reached ``status``."""
        with self.lock:
            return self.counts.get((prefix.rstrip("-"), status), 0)

    def arrived(self, prefix: str) -> int:
        """Commands whose id starts with ``prefix`` that reached their device."""
        with self.lock:
            return sum(1 for k in self.received if k.startswith(prefix))

    def device(self, device_id: str, announce: bool = True, clean: bool = True, start: bool = True) -> mqtt.Client:
        """A device that answers every command accepted, then succeeded."""
        result_topic = f"device/{device_id}/command/result"

        def on_message(cl, userdata, message):
            at = now_ns()
            try:
                command = json.loads(message.payload)
                command_id = command["commandId"]
            except (ValueError, KeyError, TypeError):
                return
            with self.lock:
                if command_id in self.received:
                    self.duplicates += 1
                else:
                    self.received[command_id] = at
                    self.order.setdefault(device_id, []).append(command_id)
                    stamp = (command.get("params") or {}).get("t")
                    if isinstance(stamp, int) and not command_id.startswith("warm"):
                        self.latency_ns.append(at - stamp)
            cl.publish(result_topic, json.dumps({"commandId": command_id, "status": "accepted"}), qos=1)
            cl.publish(result_topic, json.dumps({"commandId": command_id, "status": "succeeded",
                                                 "result": {"done": command.get("name")}}), qos=1)

        will = None if self.plain else (f"device/{device_id}/status", b'{"online": false}')
        c = client(f"bench-{device_id}", self.args.device_port, clean=clean, will=will,
                   subscribe=[self.command_topic_device(device_id)], on_message=on_message, start=start)
        if start and announce and not self.plain:
            c.publish(f"device/{device_id}/status", b'{"online": true}', qos=1, retain=True).wait_for_publish(10)
        self.devices.append(c)
        return c

    # -- readiness -------------------------------------------------------------------------------

    def link_ready(self) -> None:
        """The gateway's upstream subscription is in place: an invalid command (no name) is answered
        `rejected` (and not stored); re-sent until it is."""
        if self.plain:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.cloud.publish(self.command_topic_cloud("bench-probe"), b'{"commandId":"probe"}', qos=1)
            end = time.monotonic() + 1
            while time.monotonic() < end:
                if self.seen("probe", "rejected"):
                    return
                time.sleep(0.01)
        raise Failure("the gateway never answered the probe command (upstream subscription)")

    def presence(self, devices: list[str], online: bool) -> None:
        """The gateway sees each device as announced (admin API /api/devices)."""
        if self.plain:
            return
        url = f"http://127.0.0.1:{self.args.admin_port}/api/devices"

        def all_there() -> bool:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
            listed = body.get("devices", body) if isinstance(body, dict) else body
            states = {d.get("deviceId"): d.get("announcedOnline") for d in listed if isinstance(d, dict)}
            return all(states.get(d) is online for d in devices)

        wait(all_there, 30, f"{len(devices)} device(s) announced {'online' if online else 'offline'} in /api/devices")

    def warm_up(self, devices: list[str]) -> None:
        """One command per device, answered: connections, subscriptions and presence all work."""
        for device in devices:
            self.send(device, f"warm-{device}", stamp=False)
        wait(lambda: all(f"warm-{d}" in self.succeeded_ns for d in devices), 60, "the warm-up commands' results")

    def close(self) -> None:
        for c in self.devices:
            close(c)
        close(self.cloud)

    def check_order(self) -> str:
        """Each device's commands arrived in the order sent (Failure otherwise); the duplicates."""
        violations = 0
        with self.lock:
            for ids in self.order.values():
                numbers = [int(i.rsplit("-", 1)[1]) for i in ids if not i.startswith("warm")]
                violations += sum(1 for a, b in zip(numbers, numbers[1:]) if b < a)
        if violations:
            raise Failure(f"{violations} command(s) reached their device out of order")
        return f"order_violations=0 duplicates={self.duplicates}"


def percentile_us(values: list[int], p: float) -> float:
    """Nearest rank, as Tests/Benchmarks/sink.c."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, int(p * len(ordered) + 0.999999999)))
    return ordered[rank - 1] / 1000


def write_bytes(pid: int | None) -> int:
    if not pid:
        return 0
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def latency(args, rig: Rig) -> str:
    names = [f"lat{k}" for k in range(args.devices)]
    rig.link_ready()
    for name in names:
        rig.device(name)
    rig.presence(names, True)
    rig.warm_up(names)
    start = time.monotonic()
    for i in range(args.commands):
        pause = start + i / args.rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        rig.send(names[i % len(names)], f"l-{i}")
    wait(lambda: rig.count("succeeded", "l-") >= args.commands, 120, f"{args.commands} succeeded")
    lost = args.commands - rig.arrived("l-")
    if lost:
        raise Failure(f"{lost} command(s) never reached their device")
    values = rig.latency_ns
    return (f"n={len(values)} p50_us={percentile_us(values, 0.5):.0f} p99_us={percentile_us(values, 0.99):.0f} "
            f"max_us={percentile_us(values, 1.0):.0f} {rig.check_order()}")


def throughput(args, rig: Rig) -> str:
    names = [f"tp{k}" for k in range(args.devices)]
    rig.link_ready()
    for name in names:
        rig.device(name)
    rig.presence(names, True)
    rig.warm_up(names)
    bytes_before = write_bytes(args.pid)
    first = now_ns()
    for i in range(args.commands):
        rig.send(names[i % len(names)], f"t-{i}", stamp=False)
    wait(lambda: rig.count("succeeded", "t-") >= args.commands, 600, f"{args.commands} succeeded")
    with rig.lock:
        last = max(v for k, v in rig.succeeded_ns.items() if k.startswith("t-"))
    seconds = (last - first) / 1e9
    line = f"n={args.commands} seconds={seconds:.3f} rate={args.commands / seconds:.0f} {rig.check_order()}"
    if args.pid:
        time.sleep(1)  # the forwarder's removals commit
        line += f" write_bytes={(write_bytes(args.pid) - bytes_before) / args.commands:.0f}"
    if not rig.plain:
        missing = [f"t-{i}" for i in range(args.commands)
                   if not {"queued", "delivered", "succeeded"} <= rig.statuses.get(f"t-{i}", set())]
        if missing:
            raise Failure(f"{len(missing)} command(s) without queued, delivered and succeeded upstream, e.g. {missing[:3]}")
    return line


def catchup(args, rig: Rig) -> str:
    name = "sleeper"
    rig.link_ready()
    if rig.plain:
        # A persistent session that subscribed and went away: the broker queues for it.
        rig.device(name, clean=False)
        close(rig.devices.pop())
    else:
        hello = client(f"bench-{name}-hello", args.device_port)
        hello.publish(f"device/{name}/status", b'{"online": false}', qos=1, retain=True).wait_for_publish(10)
        close(hello)
        rig.presence([name], False)
    infos = [rig.cloud.publish(rig.command_topic_cloud(name),
                               json.dumps({"commandId": f"q-{i}", "name": "bench", "params": {}}), qos=1)
             for i in range(args.commands)]
    for info in infos:
        info.wait_for_publish(30)
    if not rig.plain:
        wait(lambda: rig.count("queued", "q-") >= args.commands, 120, f"{args.commands} queued upstream")
    if rig.received:
        raise Failure(f"{len(rig.received)} command(s) reached the device before it came online")
    device = rig.device(name, clean=not rig.plain, start=False)
    start = now_ns()
    if not rig.plain:
        # Subscribed first, then the announcement (the gateway sends once it sees it).
        def announce(cl, userdata, mid, granted):
            cl.publish(f"device/{name}/status", b'{"online": true}', qos=1, retain=True)
        device.on_subscribe = announce
    connect(device, args.device_port)
    wait(lambda: rig.arrived("q-") >= args.commands, 600,
         f"{args.commands} commands at the device")
    with rig.lock:
        last = max(v for k, v in rig.received.items() if k.startswith("q-"))
    wait(lambda: rig.count("succeeded", "q-") >= args.commands, 120, f"{args.commands} succeeded")
    with rig.lock:
        done = max(v for k, v in rig.succeeded_ns.items() if k.startswith("q-"))
    return (f"n={args.commands} seconds={(last - start) / 1e9:.3f} done_seconds={(done - start) / 1e9:.3f} "
            f"{rig.check_order()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["latency", "throughput", "catchup"])
    parser.add_argument("--cloud-port", type=int, required=True)
    parser.add_argument("--device-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, default=0)
    parser.add_argument("--devices", type=int, default=0)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--pid", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="the baseline: one mosquitto, no gateway")
    args = parser.parse_args()
    if not args.plain and not args.admin_port:
        parser.error("--admin-port is needed with the gateway (presence is read from /api/devices)")
    args.devices = args.devices or {"latency": 4, "throughput": 100, "catchup": 1}[args.mode]
    rig = Rig(args)
    try:
        print({"latency": latency, "throughput": throughput, "catchup": catchup}[args.mode](args, rig), flush=True)
        return 0
    except Failure as error:
        print(f"commands_bench {args.mode}: {error}", file=sys.stderr)
        return 1
    finally:
        rig.close()


if __name__ == "__main__":
    sys.exit(main())
