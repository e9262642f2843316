"""Cloud → device commands (CONTRACTS.md §6), the device shadow (§7) and presence (§5), checked from
outside in another language than the daemon: Python with Debian's paho-mqtt plays the cloud (on the
upstream broker) and the devices (on the device broker), against the built daemon and two real
mosquitto brokers with persistence.

    scripts/contract-commands [--gateway PATH] [--keep]

Commands: a command for an offline device is answered `queued` and not delivered; it survives kill -9
of the gateway and a restart of both brokers, and arrives in order once the device announces itself;
one at a time (`commands.inflightPerDevice` 1); an unanswered delivery is sent again with the same
`commandId` after `commands.ackTimeoutSeconds`; the device's `accepted`/final results become
`delivered`/`succeeded`/`failed` upstream, also those given while the uplink is down (in order, when it
returns); a TTL that passes while the device is offline gives `expired` and no delivery; a repeated
command is not delivered twice; a full queue and bad commands are refused with reasons.
Shadow: `desired` set while the device is offline → a delta when it comes back; a report → the whole
document upstream with the next version; `get` while the uplink is down is answered from the hub's
copy; an update with a wrong expected version is refused on …/rejected; merge-patch `null` removes a key.
Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from .procs import Gateway, HarnessError, Mosquitto, Sandbox, wait_until

ROOT = Path(__file__).resolve().parents[2]
HUB = "faults"


class Recorder:
    """An MQTT client that keeps (topic, JSON or raw text) of everything on its subscriptions and
    can publish; its session is persistent when it has a fixed client id and ``clean`` is False."""

    def __init__(self, port: int, name: str, topics: list[str], clean: bool = True,
                 will: tuple[str, bytes] | None = None):
        self.port = port
        self.name = name
        self.topics = topics
        self.messages: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(client_id=name, clean_session=clean, protocol=mqtt.MQTTv311)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if topics and not self.subscribed.wait(10):
            raise HarnessError(f"{name}: could not subscribe to {topics}")

    def _on_connect(self, client, userdata, flags, rc):
        self.subscribed.clear()
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        if self.on_connected:
            self.on_connected(self)

    on_connected = None

    def _on_message(self, client, userdata, message):
        try:
            value: object = json.loads(message.payload)
        except (ValueError, RecursionError):  # the cloud's own hostile updates come back on shadow/#
            value = message.payload[:200].decode("utf-8", "replace")
        with self.lock:
            self.messages.append((message.topic, value))
        if self.on_message:
            self.on_message(self, message.topic, value)

    on_message = None

    def publish(self, topic: str, payload: object, retain: bool = False) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        info = self.client.publish(topic, data, qos=1, retain=retain)
        info.wait_for_publish(10)

    def snapshot(self, prefix: str = "") -> list[tuple[str, object]]:
        with self.lock:
            return [(t, m) for t, m in self.messages if t.startswith(prefix)]

    def close(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:
            pass


class Cloud(Recorder):
    """The cloud side: sends commands and shadow updates, keeps what the hub reports."""

    def __init__(self, port: int):
        super().__init__(port, "contract-cloud", [f"hubs/{HUB}/commands/+/status", f"hubs/{HUB}/shadow/#"], clean=False)

    def command(self, device: str, command: dict) -> None:
        self.publish(f"hubs/{HUB}/commands/{device}", command)

    def statuses(self, device: str, command_id: str | None = None) -> list[dict]:
        return [m for t, m in self.snapshot(f"hubs/{HUB}/commands/{device}/status")
                if isinstance(m, dict) and (command_id is None or m.get("commandId") == command_id)]

    def states(self, device: str, command_id: str) -> list[str]:
        return [m.get("status") for m in self.statuses(device, command_id)]

    def documents(self, device: str) -> list[dict]:
        return [m for t, m in self.snapshot(f"hubs/{HUB}/shadow/{device}") if t == f"hubs/{HUB}/shadow/{device}" and isinstance(m, dict)]


class Device(Recorder):
    """A device that announces its presence (retained status, offline will) and, when ``obey`` is
    set, answers each command: accepted, then succeeded with the result ``{"done": name}``."""

    def __init__(self, port: int, device_id: str, obey: bool = True):
        self.device_id = device_id
        self.obey = obey
        self.commands: list[dict] = []
        super().__init__(port, device_id, [f"device/{device_id}/command", f"device/{device_id}/shadow/delta",
                                           f"device/{device_id}/shadow"],
                         clean=False, will=(f"device/{device_id}/status", b'{"online": false}'))
        self.publish(f"device/{device_id}/status", {"online": True}, retain=True)

    def on_message(self, _, topic, value):  # noqa: D401 - paho callback
        if topic == f"device/{self.device_id}/command" and isinstance(value, dict):
            self.commands.append(value)
            if self.obey:
                result = f"device/{self.device_id}/command/result"
                threading.Thread(target=self._answer, args=(result, value), daemon=True).start()

    def _answer(self, topic: str, command: dict) -> None:
        self.client.publish(topic, json.dumps({"commandId": command.get("commandId"), "status": "accepted"}), qos=1)
        self.client.publish(topic, json.dumps({"commandId": command.get("commandId"), "status": "succeeded",
                                               "result": {"done": command.get("name")}}), qos=1)

    def delivered_ids(self) -> list[str]:
        return [c.get("commandId") for c in self.commands]

    def go_offline(self) -> None:
        self.publish(f"device/{self.device_id}/status", {"online": False}, retain=True)
        self.close()


def announce_offline(port: int, device_id: str) -> None:
    """A device that said goodbye: its retained status is {"online": false}."""
    client = mqtt.Client(client_id=f"{device_id}-hello", clean_session=True, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(f"device/{device_id}/status", json.dumps({"online": False}), qos=1, retain=True).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("EDGE_GATEWAY_BIN", str(ROOT / ".build/debug/edge-gateway")))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    failures: list[str] = []

    def check(condition: bool, what: str, seen: object = "") -> None:
        print(("  ok    " if condition else "  FAIL  ") + what + ("" if condition or seen == "" else f"\n        seen: {seen}"))
        if not condition:
            failures.append(what)

    started = time.monotonic()
    sandbox = Sandbox(Path(tempfile.gettempdir()), "commands-contract")
    try:
        device_broker = Mosquitto(sandbox, "device")
        device_broker.start()
        upstream_broker = Mosquitto(sandbox, "upstream")
        upstream_broker.start()
        cloud = Cloud(upstream_broker.port)
        sandbox.on_close(cloud.close)
        gateway = Gateway(sandbox, args.gateway, device_broker.port, upstream_broker.port, {
            "commands.ackTimeoutSeconds": 2,
            "commands.maxPerDevice": 3,
            "devices.presenceSeconds": 5,
        })
        gateway.start()
        sandbox.on_close(gateway.kill)

        # --- commands ------------------------------------------------------------------------
        print("commands (CONTRACTS.md §6):")
        announce_offline(device_broker.port, "lamp-1")
        time.sleep(0.3)  # the gateway takes the retained status before the commands
        for index in (1, 2, 3):
            cloud.command("lamp-1", {"commandId": f"c{index}", "name": "blink", "params": {"times": index}})
        wait_until(lambda: all("queued" in cloud.states("lamp-1", f"c{i}") for i in (1, 2, 3)), 15,
                   "queued for c1..c3", details=gateway.log_tail)
        check(True, "three commands for an offline device are answered 'queued' upstream")
        queued = cloud.statuses("lamp-1", "c1")[0]
        check(set(queued) == {"commandId", "hubId", "deviceId", "status", "result", "message", "at"}
              and queued["hubId"] == HUB and queued["deviceId"] == "lamp-1" and isinstance(queued["at"], int),
              "a status message has commandId, hubId, deviceId, status, result, message, at", queued)

        cloud.command("lamp-1", {"commandId": "c4", "name": "blink"})
        wait_until(lambda: cloud.states("lamp-1", "c4"), 10, "an answer for c4")
        refused = cloud.statuses("lamp-1", "c4")[0]
        check(refused["status"] == "rejected" and refused["message"] == "queue full" and refused["commandId"] == "c4",
              "a fourth command past commands.maxPerDevice (3) is rejected with 'queue full'", refused)
        for bad, why in [({"name": "no id"}, "no commandId"), ({"commandId": "x" * 65, "name": "n"}, "commandId too long"),
                         ({"commandId": "b1"}, "no name"), ({"commandId": "b2", "name": "n", "ttlSeconds": "soon"}, "ttl not a number")]:
            cloud.command("lamp-2", bad)
        cloud.publish(f"hubs/{HUB}/commands/lamp-2", b"{not json")
        wait_until(lambda: len(cloud.statuses("lamp-2")) >= 5, 10, "five refusals for lamp-2")
        refusals = cloud.statuses("lamp-2")
        check(all(m["status"] == "rejected" and m["message"] == "invalid command" and (m.get("result") or {}).get("detail")
                  for m in refusals),
              "bad commands (no id, long id, no name, bad ttl, broken JSON) are rejected: 'invalid command', the detail in result",
              [(m["message"], m.get("result")) for m in refusals])

        announce_offline(device_broker.port, "lamp-9")
        time.sleep(0.3)
        cloud.command("lamp-9", {"commandId": "c-ttl", "name": "blink", "ttlSeconds": 1})
        cloud.command("lamp-9", {"commandId": "c9", "name": "blink"})
        wait_until(lambda: "queued" in cloud.states("lamp-9", "c-ttl") and "queued" in cloud.states("lamp-9", "c9"), 10,
                   "c-ttl and c9 queued")

        # kill -9 of the gateway and a restart of both brokers with the commands waiting
        gateway.kill()
        device_broker.stop()
        upstream_broker.stop()
        device_broker.start()
        upstream_broker.start()
        gateway.start()
        time.sleep(2.5)  # past c-ttl's expiry while the device is still offline
        wait_until(lambda: "expired" in cloud.states("lamp-9", "c-ttl"), 15, "c-ttl expired", details=gateway.log_tail)

        lamp = Device(device_broker.port, "lamp-1")
        sandbox.on_close(lamp.close)
        wait_until(lambda: all("succeeded" in cloud.states("lamp-1", f"c{i}") for i in (1, 2, 3)), 30,
                   "c1..c3 succeeded", details=lambda: f"{lamp.delivered_ids()}\n{gateway.log_tail()}")
        check(lamp.delivered_ids()[:3] == ["c1", "c2", "c3"],
              "after kill -9 and a restart of both brokers the commands reach the device in order once it announces itself",
              lamp.delivered_ids())
        lamp9 = Device(device_broker.port, "lamp-9")
        sandbox.on_close(lamp9.close)
        wait_until(lambda: "succeeded" in cloud.states("lamp-9", "c9"), 30, "c9 succeeded", details=gateway.log_tail)
        check(lamp9.delivered_ids() == ["c9"] and cloud.states("lamp-9", "c-ttl")[-1] == "expired",
              "a command whose TTL passed while the device was offline is 'expired' upstream and never delivered (the next one is)",
              (lamp9.delivered_ids(), cloud.states("lamp-9", "c-ttl")))
        check(all(cloud.states("lamp-1", f"c{i}")[-2:] == ["delivered", "succeeded"] for i in (1, 2, 3)),
              "each becomes 'delivered' (accepted) then 'succeeded' upstream",
              {f"c{i}": cloud.states("lamp-1", f"c{i}") for i in (1, 2, 3)})
        done = next(m for m in cloud.statuses("lamp-1", "c2") if m["status"] == "succeeded")
        check(done.get("result") == {"done": "blink"}, "the device's result reaches the cloud", done)
        first = lamp.commands[0]
        check(first.get("name") == "blink" and first.get("params") == {"times": 1} and "expiresAt" in first,
              "device/{id}/command carries commandId, name, params, expiresAt", first)

        cloud.command("lamp-1", {"commandId": "c2", "name": "blink", "params": {"times": 2}})
        wait_until(lambda: len(cloud.statuses("lamp-1", "c2")) >= 4, 10, "an answer to the repeated c2")
        check(cloud.states("lamp-1", "c2")[-1] == "succeeded" and lamp.delivered_ids().count("c2") == 1,
              "a repeated command is answered with its current status and not delivered again", cloud.states("lamp-1", "c2"))

        # an unanswered delivery is sent again with the same id
        mute = Device(device_broker.port, "mute-1", obey=False)
        sandbox.on_close(mute.close)
        cloud.command("mute-1", {"commandId": "m1", "name": "reboot"})
        wait_until(lambda: len(mute.commands) >= 2, 15, "m1 delivered twice", details=gateway.log_tail)
        check([c["commandId"] for c in mute.commands[:2]] == ["m1", "m1"],
              "without 'accepted' within commands.ackTimeoutSeconds the command is sent again with the same commandId")
        mute.publish("device/mute-1/command/result", {"commandId": "m1", "status": "failed", "message": "no power"})
        wait_until(lambda: "failed" in cloud.states("mute-1", "m1"), 10, "m1 failed")
        check(next(m for m in cloud.statuses("mute-1", "m1") if m["status"] == "failed")["message"] == "no power",
              "a final status without 'accepted' is taken, with the device's message")

        # results given while the uplink is down arrive in order when it returns
        mute.go_offline()
        time.sleep(0.3)
        for index in (1, 2):
            cloud.command("mute-1", {"commandId": f"u{index}", "name": "blink"})
        wait_until(lambda: all("queued" in cloud.states("mute-1", f"u{i}") for i in (1, 2)), 15, "u1, u2 queued")
        upstream_broker.stop()
        back = Device(device_broker.port, "mute-1")
        sandbox.on_close(back.close)
        wait_until(lambda: back.delivered_ids() == ["u1", "u2"], 20, "u1, u2 delivered while the uplink is down",
                   details=lambda: f"{back.delivered_ids()}\n{gateway.log_tail()}")
        time.sleep(0.5)
        upstream_broker.start()
        wait_until(lambda: all("succeeded" in cloud.states("mute-1", f"u{i}") for i in (1, 2)), 30,
                   "u1, u2 results upstream after the outage", details=gateway.log_tail)
        order = [(m["commandId"], m["status"]) for m in cloud.statuses("mute-1") if m["commandId"] in ("u1", "u2")
                 and m["status"] != "queued"]
        check(order == [("u1", "delivered"), ("u1", "succeeded"), ("u2", "delivered"), ("u2", "succeeded")],
              "results given while the uplink was down arrive upstream in order when it returns", order)

        # --- shadow --------------------------------------------------------------------------
        print("shadow (CONTRACTS.md §7):")
        announce_offline(device_broker.port, "thermo-1")
        time.sleep(0.3)
        cloud.publish(f"hubs/{HUB}/shadow/thermo-1/update", {"desired": {"target": 21, "mode": "eco", "fan": "auto"}, "clientToken": "t1"})
        wait_until(lambda: cloud.documents("thermo-1"), 10, "the shadow document upstream", details=gateway.log_tail)
        doc = cloud.documents("thermo-1")[-1]
        check(doc.get("desired") == {"target": 21, "mode": "eco", "fan": "auto"} and doc.get("reported") == {}
              and doc.get("version") == 1 and isinstance(doc.get("updatedAt"), int),
              "an update of desired: the whole document upstream with version 1", doc)
        thermo = Device(device_broker.port, "thermo-1", obey=False)
        sandbox.on_close(thermo.close)
        wait_until(lambda: thermo.snapshot("device/thermo-1/shadow/delta"), 10, "a delta when thermo-1 comes online")
        delta = thermo.snapshot("device/thermo-1/shadow/delta")[-1][1]
        check(delta == {"delta": {"target": 21, "mode": "eco", "fan": "auto"}, "version": 1},
              "desired set while the device was offline → the delta when it announces itself", delta)
        thermo.publish("device/thermo-1/shadow/report", {"reported": {"target": 21, "mode": "comfort", "temp": 19.5}})
        wait_until(lambda: any(d.get("version") == 2 for d in cloud.documents("thermo-1")), 10, "version 2 upstream")
        doc = next(d for d in cloud.documents("thermo-1") if d.get("version") == 2)
        check(doc["reported"] == {"target": 21, "mode": "comfort", "temp": 19.5} and doc["desired"]["mode"] == "eco",
              "a report → the whole document upstream with the next version", doc)
        cloud.publish(f"hubs/{HUB}/shadow/thermo-1/update", {"desired": {"fan": None}, "version": 2})
        wait_until(lambda: any(d.get("version") == 3 for d in cloud.documents("thermo-1")), 10, "version 3 upstream")
        doc = next(d for d in cloud.documents("thermo-1") if d.get("version") == 3)
        check("fan" not in doc["desired"] and doc["desired"] == {"target": 21, "mode": "eco"},
              "merge-patch null removes a key", doc)
        deltas = [m for _, m in thermo.snapshot("device/thermo-1/shadow/delta")]
        check(deltas[-1] == {"delta": {"mode": "eco"}, "version": 3},
              "after each change of desired the device gets the keys that differ from reported", deltas[-1])
        cloud.publish(f"hubs/{HUB}/shadow/thermo-1/update", {"desired": {"target": 25}, "version": 1, "clientToken": "stale"})
        wait_until(lambda: cloud.snapshot(f"hubs/{HUB}/shadow/thermo-1/rejected"), 10, "a refusal")
        refusal = cloud.snapshot(f"hubs/{HUB}/shadow/thermo-1/rejected")[-1][1]
        check({k: refusal.get(k) for k in ("clientToken", "code", "version")} == {"clientToken": "stale", "code": "version_conflict", "version": 3}
              and isinstance(refusal.get("reason"), str),
              "an update with a wrong expected version is refused on …/rejected with the current version (and a reason)", refusal)
        upstream_broker.stop()
        thermo.publish("device/thermo-1/shadow/get", "")
        wait_until(lambda: thermo.snapshot("device/thermo-1/shadow") and
                   any(t == "device/thermo-1/shadow" for t, _ in thermo.snapshot("device/thermo-1/shadow")), 10,
                   "the document on device/thermo-1/shadow")
        got = [m for t, m in thermo.snapshot("device/thermo-1/shadow") if t == "device/thermo-1/shadow"][-1]
        check(got.get("version") == 3 and got.get("desired") == {"target": 21, "mode": "eco"},
              "shadow/get while the uplink is down is answered from the hub's copy", got)
        upstream_broker.start()
        wait_until(lambda: cloud.client.is_connected(), 10, "the cloud reconnected")

        # --- a hostile cloud and hostile devices -------------------------------------------------
        print("hostile input (commands and shadow surfaces):")
        import random
        rng = random.Random(2026)
        garbage = [b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"commandId": 5, "name": "x"}', b"[" * 100_000,
                   b'{"commandId": "x", "name": "' + b"n" * 300_000 + b'"}', b'{"desired": ' + b"[" * 50_000 + b"}",
                   b'{"desired": {"a": 1}, "version": "2"}', b'{"desired": {"k": "' + b"v" * 20_000 + b'"}}',
                   b'{"commandId": "dup", "commandId": "dup2", "name": "x"}']
        topics = [f"hubs/{HUB}/commands/h{{}}", f"hubs/{HUB}/shadow/h{{}}/update", f"hubs/{HUB}/commands/bad.id{{}}",
                  f"hubs/{HUB}/shadow/x/y{{}}/update", f"hubs/{HUB}/commands/{{}}/extra"]
        for index in range(1500):
            topic = rng.choice(topics).format(rng.randrange(40))
            cloud.client.publish(topic, rng.choice(garbage), qos=rng.choice([0, 1]))
        hostile_device = Recorder(device_broker.port, "hostile-dev", [])
        sandbox.on_close(hostile_device.close)
        for index in range(1500):
            channel = rng.choice(["command/result", "shadow/report", "shadow/get"])
            hostile_device.client.publish(f"device/h{rng.randrange(40)}/{channel}", rng.choice(garbage), qos=rng.choice([0, 1]))
        # Past commands.maxTotal (2000 by default) a new command is refused, whatever the device.
        for index in range(2100):
            cloud.client.publish(f"hubs/{HUB}/commands/flood-{index % 500}", json.dumps({"commandId": f"f{index}", "name": "x"}), qos=1)
        wait_until(lambda: any(m.get("message") == "queue full" for d in (f"flood-{i}" for i in range(500)) for m in cloud.statuses(d)),
                   60, "a 'queue full' past commands.maxTotal", details=gateway.log_tail)
        check(True, "past commands.maxTotal new commands are refused with 'queue full'")
        cloud.command("lamp-1", {"commandId": "after-hostile", "name": "blink"})
        wait_until(lambda: "rejected" in cloud.states("lamp-1", "after-hostile") or "succeeded" in cloud.states("lamp-1", "after-hostile"),
                   30, "an answer after the hostile input", details=gateway.log_tail)
        check(cloud.states("lamp-1", "after-hostile")[-1] in ("succeeded", "rejected"),
              "after 3,000 hostile messages and a flood the daemon still answers a command", cloud.states("lamp-1", "after-hostile"))
        thermo.publish("device/thermo-1/shadow/get", "")
        wait_until(lambda: len([t for t, _ in thermo.snapshot("device/thermo-1/shadow") if t == "device/thermo-1/shadow"]) >= 2, 10,
                   "the document again")
        check(True, "and still answers a shadow get")
        rss = gateway.rss_kb()
        check(rss is not None and rss < 120_000, f"its memory stays bounded (RSS {rss} kB)")

        gateway.check_alive()
        check(gateway.running, "the daemon is still running")
    except HarnessError as error:
        print(f"  FAIL  {error}")
        failures.append(str(error).splitlines()[0])
    finally:
        sandbox.close(keep=args.keep or bool(failures))
    took = time.monotonic() - started
    if failures:
        print(f"commands contract: {len(failures)} check(s) failed ({took:.1f} s); sandbox kept: {sandbox.dir}")
        return 1
    print(f"commands contract: every check passed ({took:.1f} s)")
    return 0
