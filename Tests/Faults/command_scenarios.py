"""Fault scenario for cloud → device commands (CONTRACTS.md §6): commands in flight through kill -9 of
the gateway, upstream outages and device-broker restarts, with devices that come and go.

A cloud client (paho, persistent session) sends commands to a few devices, one device's commands one
after the other (each re-sent until the hub answers it, as the contract asks of a sender), some with a
short `ttlSeconds`. The devices (clean sessions, so the broker holds nothing for them while they are
away) announce their presence with a retained status and a will, obey each command (`accepted`, then
`succeeded`) and drop off and come back at random. Meanwhile the gateway is SIGKILLed and restarted,
the upstream broker is stopped and started and the device broker restarted. At the end every device
comes online and stays; then:

- no command lost: every command the hub answered `queued` reaches a final status upstream
  (`succeeded`, or `expired` for one whose time passed), and its last status upstream is final;
- none delivered after its expiry: no device receives a command after its `expiresAt`
  (250 ms of slack for the hop through the broker);
- per device, first deliveries come in the order the commands were queued;
- a command that expired was never delivered after it expired, and `succeeded` ones were delivered.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt

from .procs import HarnessError, wait_until

HUB = "faults"


class CloudSender:
    """Sends the commands of each device in order, each until the hub answers it; records statuses."""

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.statuses: dict[tuple[str, str], list[dict]] = {}
        self.client = mqtt.Client(client_id="faults-cloud-commands", clean_session=False, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(f"hubs/{HUB}/commands/+/status", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        try:
            status = json.loads(message.payload)
        except ValueError:
            return
        with self.lock:
            self.statuses.setdefault((status.get("deviceId"), status.get("commandId")), []).append(status)

    def states(self, device: str, command_id: str) -> list[str]:
        with self.lock:
            return [s.get("status") for s in self.statuses.get((device, command_id), [])]

    def send_until_answered(self, device: str, command: dict, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.is_connected():
                self.client.publish(f"hubs/{HUB}/commands/{device}", json.dumps(command), qos=1)
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                if self.states(device, command["commandId"]):
                    return True
                time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class ObedientDevice:
    """A device that announces itself and obeys commands; ``go_away`` / ``come_back`` at will. Like
    a real device it keeps its results until the broker acknowledged them and sends those again when
    it is back (a result lost with a dropped connection would leave the command `delivered`)."""

    def __init__(self, port: int, device_id: str):
        self.port = port
        self.device_id = device_id
        self.lock = threading.Lock()
        self.received: list[tuple[float, dict]] = []
        self.client: mqtt.Client | None = None
        self.unacknowledged: list[tuple[str, object]] = []   # (payload, MQTTMessageInfo or None)

    def come_back(self) -> None:
        if self.client is not None:
            return
        client = mqtt.Client(client_id=self.device_id, clean_session=True, protocol=mqtt.MQTTv311)
        client.will_set(f"device/{self.device_id}/status", json.dumps({"online": False}), qos=1, retain=True)
        client.reconnect_delay_set(0.1, 0.5)

        def connected(c, userdata, flags, rc):
            c.subscribe(f"device/{self.device_id}/command", qos=1)
            c.publish(f"device/{self.device_id}/status", json.dumps({"online": True}), qos=1, retain=True)
            with self.lock:
                pending = [payload for payload, info in self.unacknowledged if info is None or not info.is_published()]
                self.unacknowledged = []
            for payload in pending:
                self._send_result(c, payload)

        client.on_connect = connected
        client.on_message = self._on_command
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self.client = client

    def go_away(self) -> None:
        """Drops off without a goodbye (the broker publishes the will)."""
        if self.client is None:
            return
        client, self.client = self.client, None
        client.loop_stop()
        client.socket().close() if client.socket() else None

    def _on_command(self, client, userdata, message):
        try:
            command = json.loads(message.payload)
        except ValueError:
            return
        with self.lock:
            self.received.append((time.time(), command))
        self._send_result(client, json.dumps({"commandId": command.get("commandId"), "status": "accepted"}))
        self._send_result(client, json.dumps({"commandId": command.get("commandId"), "status": "succeeded"}))

    def _send_result(self, client, payload: str) -> None:
        info = client.publish(f"device/{self.device_id}/command/result", payload, qos=1)
        with self.lock:
            self.unacknowledged = [(p, i) for p, i in self.unacknowledged if i is None or not i.is_published()]
            self.unacknowledged.append((payload, info))

    def deliveries(self) -> list[tuple[float, dict]]:
        with self.lock:
            return list(self.received)


def commands_in_flight(ctx) -> None:
    """See the module's docstring."""
    from .scenarios import Bed  # noqa: PLC0415 - avoids an import cycle

    bed = Bed(ctx, "commands")
    gw = bed.gateway(**{"commands.ackTimeoutSeconds": 1, "devices.presenceSeconds": 5})
    gw.start()
    cloud = CloudSender(bed.upstream.port)
    ctx.sandbox.on_close(cloud.close)
    devices = [ObedientDevice(bed.device.port, f"cmd-dev-{index}") for index in range(ctx.pick(3, 6))]
    for device in devices:
        device.come_back()
        ctx.sandbox.on_close(device.go_away)
    per_device = ctx.pick(8, 40)
    sent: dict[str, list[dict]] = {d.device_id: [] for d in devices}
    stop = threading.Event()
    errors: list[str] = []

    def send_all(device: ObedientDevice) -> None:
        for index in range(per_device):
            if stop.is_set():
                return
            command = {"commandId": f"{device.device_id}-c{index}", "name": "blink", "params": {"n": index}}
            if ctx.rng.random() < 0.3:
                command["ttlSeconds"] = ctx.rng.choice([1, 2, 3])
            command_sent = time.time()
            if not cloud.send_until_answered(device.device_id, command, timeout=60):
                errors.append(f"{command['commandId']}: no answer from the hub within 60 s")
                return
            command["sentAt"] = command_sent
            sent[device.device_id].append(command)
            time.sleep(ctx.rng.uniform(0.0, 0.3))

    senders = [threading.Thread(target=send_all, args=(d,), daemon=True) for d in devices]
    for thread in senders:
        thread.start()

    cycles = ctx.pick(4, 20)
    ctx.result.cycles = str(cycles)
    kinds = {"gateway SIGKILL": 0, "upstream outage": 0, "device broker restart": 0, "devices away": 0}
    for cycle in range(1, cycles + 1):
        time.sleep(ctx.rng.uniform(0.3, 1.2))
        for device in devices:
            if ctx.rng.random() < 0.4:
                device.go_away()
                kinds["devices away"] += 1
            else:
                device.come_back()
        fault = ctx.rng.choice(["gateway SIGKILL", "upstream outage", "device broker restart"])
        if fault == "gateway SIGKILL":
            gw.kill()
            time.sleep(ctx.rng.uniform(0.0, 0.5))
            gw.start()
        elif fault == "upstream outage":
            bed.upstream.stop()
            time.sleep(ctx.rng.uniform(0.3, 1.5))
            bed.upstream.start()
        else:
            bed.device.stop()
            time.sleep(ctx.rng.uniform(0.1, 0.5))
            bed.device.start()
        kinds[fault] += 1
        ctx.log(f"cycle {cycle}/{cycles}: {fault}; {sum(len(v) for v in sent.values())} commands answered so far")
    ctx.result.note("faults: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))

    for device in devices:
        device.come_back()
    for thread in senders:
        thread.join(timeout=120)
    stop.set()
    for message in errors:
        ctx.result.fail(message)
    every = [(device, command) for device, commands in sent.items() for command in commands]

    def finished() -> bool:
        return all(cloud.states(d, c["commandId"]) and cloud.states(d, c["commandId"])[-1] in ("succeeded", "expired")
                   for d, c in every)

    try:
        wait_until(finished, ctx.pick(60, 180), "every queued command finished upstream", interval=0.2)
    except HarnessError:
        pass
    gw.check_alive()

    lost = [c["commandId"] for d, c in every if not set(cloud.states(d, c["commandId"])) & {"succeeded", "expired"}]
    unsettled = [c["commandId"] for d, c in every
                 if cloud.states(d, c["commandId"]) and cloud.states(d, c["commandId"])[-1] not in ("succeeded", "expired")]
    late, out_of_order, undelivered = [], [], []
    for device in devices:
        deliveries = device.deliveries()
        first: dict[str, float] = {}
        for at, command in deliveries:
            first.setdefault(command.get("commandId"), at)
            expires = command.get("expiresAt")
            if expires is not None and at * 1000 > expires + 250:
                late.append(f"{command.get('commandId')} received {at * 1000 - expires:.0f} ms after expiresAt")
        queued = [c["commandId"] for c in sent[device.device_id] if c["commandId"] in first]
        by_arrival = sorted(queued, key=lambda cid: first[cid])
        if by_arrival != queued:
            out_of_order.append(f"{device.device_id}: queued {queued[:6]}…, first deliveries {by_arrival[:6]}…")
        for command in sent[device.device_id]:
            if "succeeded" in cloud.states(device.device_id, command["commandId"]) and command["commandId"] not in first:
                undelivered.append(command["commandId"])
    expired = sum(1 for d, c in every if "expired" in cloud.states(d, c["commandId"]))
    succeeded = sum(1 for d, c in every if "succeeded" in cloud.states(d, c["commandId"]))
    ctx.result.accepted = len(every)
    ctx.result.received = expired + succeeded
    ctx.result.lost = len(lost)
    ctx.result.order_violations = len(out_of_order)
    ctx.result.note(f"{len(every)} commands queued: {succeeded} succeeded, {expired} expired; "
                    f"{sum(len(d.deliveries()) for d in devices)} deliveries")
    if lost:
        ctx.result.fail(f"{len(lost)} queued commands never finished upstream: {lost[:8]}")
    if unsettled:
        ctx.result.fail(f"{len(unsettled)} commands whose last status upstream is not final: {unsettled[:8]}")
    if late:
        ctx.result.fail(f"{len(late)} deliveries after expiry: {late[:5]}")
    if out_of_order:
        ctx.result.fail(f"first deliveries out of queue order: {out_of_order[:3]}")
    if undelivered:
        ctx.result.fail(f"'succeeded' without a delivery seen by the device: {undelivered[:8]}")
