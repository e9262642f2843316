"""MQTT clients on the test side: simulated devices and the upstream recorder (paho-mqtt 1.6).

A ``Device`` behaves like a real device of CONTRACTS.md §1: it publishes e1, e2, ... in order to
``device/{id}/event`` (QoS 1, persistent session with a fixed client id, so the broker queues its
acks while it or the gateway is away), keeps every event until it hears ``stored`` or
``duplicate`` for it on ``device/{id}/ack``, and resends an event whose ack has not come within
``resend_after`` seconds (after a gateway crash the ack of an event that was read but not
committed never comes: the resend is how the contract gets to no loss). ``rejected`` with reason
``store full`` means "try again later": the event is resent after ``store_full_backoff``.

The device also remembers the order in which ``stored`` acks arrived: the gateway acks in commit
order, so this is the order the events were stored in (their outbox sequence), which is the order
the upstream must see them in (see checks.py).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt


def _client(client_id: str, clean_session: bool) -> mqtt.Client:
    client = mqtt.Client(client_id=client_id, clean_session=clean_session, protocol=mqtt.MQTTv311)
    client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


@dataclass
class EventState:
    payload: bytes
    first_sent: float
    last_sent: float
    sends: int = 1
    acked: str | None = None          # "stored" / "duplicate" once accepted
    acked_at: float | None = None
    retry_at: float = 0.0             # after a "store full" rejection


class Device:
    """One simulated device (see the module doc)."""

    def __init__(self, device_id: str, port: int, *, rate: float = 40.0, window: int = 50,
                 resend_after: float = 3.0, pad: int = 0, limit: int | None = None,
                 store_full_backoff: float = 0.5, channel: str = "event"):
        self.id = device_id
        self.port = port
        self.rate = rate
        self.window = window
        self.resend_after = resend_after
        self.pad = pad
        self.limit = limit
        self.store_full_backoff = store_full_backoff
        self.topic = f"device/{device_id}/{channel}"
        self.ack_topic = f"device/{device_id}/ack"

        self.lock = threading.Lock()
        self.events: dict[str, EventState] = {}   # by eventId, in publish order (dicts keep insertion order)
        self.next_seq = 1
        self.stored_order: list[str] = []          # eventIds in the order their `stored` acks arrived
        self.stored_rank: dict[str, int] = {}
        self.acks: list[tuple[float, str | None, str, str | None]] = []  # (time, eventId, status, reason)
        self.store_full = 0
        self.unexpected: list[str] = []            # acks a valid event must never get
        self.resends = 0

        self.publishing = threading.Event()        # set: new events are published
        self.stopping = threading.Event()          # set: the thread ends
        self.no_more_new = False
        self.connected = threading.Event()
        self.client = _client(f"faults-dev-{device_id}", clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.thread = threading.Thread(target=self._run, name=f"device-{device_id}", daemon=True)
        self._rate_start = 0.0
        self._rate_base = 0

    # -- MQTT callbacks (paho's network thread) --

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(self.ack_topic, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, message):
        now = time.monotonic()
        try:
            ack = json.loads(message.payload)
            event_id, status, reason = ack.get("eventId"), ack.get("status"), ack.get("reason")
        except (ValueError, AttributeError):
            with self.lock:
                self.unexpected.append(f"unreadable ack {message.payload[:200]!r}")
            return
        with self.lock:
            self.acks.append((now, event_id, status, reason))
            state = self.events.get(event_id)
            if state is None:
                self.unexpected.append(f"ack for an event never sent: {message.payload[:200]!r}")
                return
            if status in ("stored", "duplicate"):
                if status == "stored" and event_id not in self.stored_rank:
                    self.stored_rank[event_id] = len(self.stored_order)
                    self.stored_order.append(event_id)
                if state.acked is None:
                    state.acked, state.acked_at = status, now
            elif status == "rejected" and reason == "store full":
                self.store_full += 1
                if state.acked is None:
                    state.retry_at = now + self.store_full_backoff
            else:
                self.unexpected.append(f"{event_id}: {status} {reason}")

    # -- publishing --

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self.thread.start()

    def resume(self) -> None:
        with self.lock:
            self._rate_start, self._rate_base = time.monotonic(), self.next_seq - 1
        self.publishing.set()

    def pause(self) -> None:
        self.publishing.clear()

    def stop_new(self) -> None:
        """No new events from now on; resends go on until everything is acked."""
        self.no_more_new = True
        self.publishing.clear()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def _payload(self, seq: int) -> bytes:
        data = {"seq": seq, "device": self.id}
        if self.pad:
            data["pad"] = "x" * self.pad
        return json.dumps({"eventId": f"e{seq}", "type": "faults.reading",
                           "timestamp": int(time.time() * 1000), "data": data}).encode()

    def _publish(self, payload: bytes) -> None:
        # paho queues the message while disconnected and sends it after reconnecting.
        self.client.publish(self.topic, payload, qos=1)

    def _run(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            to_send: list[bytes] = []
            with self.lock:
                outstanding = 0
                for state in self.events.values():
                    if state.acked is not None:
                        continue
                    outstanding += 1
                    # A "store full" rejection asks for a retry after the backoff; otherwise
                    # an event is resent when its ack is overdue.
                    due = state.retry_at or state.last_sent + self.resend_after
                    if now >= due and len(to_send) < 200:
                        state.last_sent, state.retry_at = now, 0.0
                        state.sends += 1
                        self.resends += 1
                        to_send.append(state.payload)
                if self.publishing.is_set() and not self.no_more_new:
                    allowed = self._rate_base + int((now - self._rate_start) * self.rate) + 1
                    while (outstanding < self.window and self.next_seq <= allowed
                           and (self.limit is None or self.next_seq <= self.limit)):
                        payload = self._payload(self.next_seq)
                        self.events[f"e{self.next_seq}"] = EventState(payload, now, now)
                        self.next_seq += 1
                        outstanding += 1
                        to_send.append(payload)
            for payload in to_send:
                self._publish(payload)
            time.sleep(0.005)

    # -- what the device knows --

    @property
    def published(self) -> int:
        with self.lock:
            return len(self.events)

    @property
    def unacked(self) -> list[str]:
        with self.lock:
            return [eid for eid, s in self.events.items() if s.acked is None]

    @property
    def accepted(self) -> set[str]:
        """Event ids acked stored or duplicate."""
        with self.lock:
            return {eid for eid, s in self.events.items() if s.acked is not None}

    def stored_acks_since(self, t: float) -> int:
        with self.lock:
            return sum(1 for (at, _, status, _) in self.acks if at >= t and status == "stored")


class Fleet:
    """Several devices driven together."""

    def __init__(self, prefix: str, count: int, port: int, **options):
        self.devices = [Device(f"{prefix}-{i}", port, **options) for i in range(1, count + 1)]

    def __iter__(self):
        return iter(self.devices)

    def start(self, publishing: bool = True) -> None:
        for d in self.devices:
            d.start()
        for d in self.devices:
            d.connected.wait(10)
        if publishing:
            self.resume()

    def resume(self) -> None:
        for d in self.devices:
            d.resume()

    def pause(self) -> None:
        for d in self.devices:
            d.pause()

    def stop_new(self) -> None:
        for d in self.devices:
            d.stop_new()

    def close(self) -> None:
        for d in self.devices:
            d.close()

    @property
    def published(self) -> int:
        return sum(d.published for d in self.devices)

    @property
    def accepted(self) -> int:
        return sum(len(d.accepted) for d in self.devices)

    def unacked(self) -> dict[str, list[str]]:
        return {d.id: u for d in self.devices if (u := d.unacked)}

    def stored_acks_since(self, t: float) -> int:
        return sum(d.stored_acks_since(t) for d in self.devices)

    @property
    def store_full(self) -> int:
        return sum(d.store_full for d in self.devices)

    @property
    def resends(self) -> int:
        return sum(d.resends for d in self.devices)

    def unexpected(self) -> list[str]:
        return [f"{d.id}: {u}" for d in self.devices for u in d.unexpected]


@dataclass
class Arrival:
    """One message the upstream side received."""
    at: float
    topic: str
    payload: bytes
    device: str | None = None
    event_id: str | None = None
    envelope: dict | None = field(default=None, repr=False)

    @classmethod
    def make(cls, topic: str, payload: bytes) -> "Arrival":
        arrival = cls(time.monotonic(), topic, bytes(payload))
        try:
            envelope = json.loads(payload)
            arrival.envelope = envelope
            arrival.device = envelope.get("deviceId")
            arrival.event_id = envelope.get("eventId")
        except (ValueError, AttributeError, RecursionError):
            pass
        return arrival


class UpstreamRecorder:
    """Subscribes to ``hubs/#`` on the upstream broker (QoS 1, persistent session, fixed client id,
    so whatever the broker accepted while the recorder was away is queued for it) and keeps every
    message in arrival order. paho acks a QoS 1 message only after on_message returned."""

    def __init__(self, port: int, client_id: str = "faults-upstream-recorder"):
        self.port = port
        self.lock = threading.Lock()
        self.arrivals: list[Arrival] = []
        self.subscribed = threading.Event()
        self.client = _client(client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc: rc == 0 and c.subscribe("hubs/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.started = False

    def _on_message(self, client, userdata, message):
        arrival = Arrival.make(message.topic, message.payload)
        with self.lock:
            self.arrivals.append(arrival)

    def start(self, timeout: float = 10) -> None:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self.started = True
        if not self.subscribed.wait(timeout):
            raise TimeoutError(f"upstream recorder could not subscribe on port {self.port}")

    def close(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
            self.started = False

    def snapshot(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def __len__(self) -> int:
        with self.lock:
            return len(self.arrivals)


class AckListener:
    """Listens to ``device/+/ack`` for many devices at once (used by the hostile-input scenario)."""

    def __init__(self, port: int, client_id: str = "faults-ack-listener"):
        self.lock = threading.Lock()
        self.acks: list[tuple[str, dict | None, bytes]] = []
        self.subscribed = threading.Event()
        self.client = _client(client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc: rc == 0 and c.subscribe("device/+/ack", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.port = port

    def _on_message(self, client, userdata, message):
        try:
            ack = json.loads(message.payload)
        except ValueError:
            ack = None
        device = message.topic.split("/")[1]
        with self.lock:
            self.acks.append((device, ack, bytes(message.payload)))

    def start(self, timeout: float = 10) -> None:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise TimeoutError("ack listener could not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self):
        with self.lock:
            return list(self.acks)

    def __len__(self) -> int:
        with self.lock:
            return len(self.acks)
