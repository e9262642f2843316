"""The status page at ``/`` checked in a real headless browser (Debian ``chromium``), driven over
the Chrome DevTools Protocol with Debian's ``python3-websocket`` (websocket-client).

    scripts/check-status-page [--gateway PATH] [--screenshot PATH] [--keep]

Starts mosquitto (device and upstream broker in one), the Python ML service and user service of
Tests/Faults/voice_contract.py and the daemon with ``ADMIN_PORT``, ``ADMIN_TOKEN``, ``HUB_ID=status-hub``,
``ML_ENDPOINTS``, ``USERS_BASE_URL`` and ``STORE_PATH`` from the environment. Then checks:

- ``/`` answers 200 and HTML without the token, but holds none of the hub's data; the data
  (``/api/status``) answers 401 without the token, also with the token in the query (only ``/live``
  takes it there), and with ``Authorization: Bearer`` the hub's status; a foreign ``Host`` gets 421;
- the page is opened as ``/#access_token=<token>`` (the fragment is never sent), its script loads
  ``/api/status`` and removes the token from the address bar;
- the page loads in chromium, ``#live`` turns ``connected`` (the ``/live`` WebSocket is open) and a
  first status message arrives (``#live-seq``);
- after a device event and one voice dialog (PCM) published as a device, ``#recent`` shows the ML
  service's transcript without a reload (the live update) and ``#depth`` shows a number;
- after telemetry from 12 devices over 4 s and one broken event, the totals (stored, forwarded,
  rejected with reason ``invalid json``) are non-zero, events/s in is a number, the chart has axes
  (events/s ticks, clock times) and points, the outbox shows its oldest age;
- the page shows the hub id, the ML endpoint with breaker ``closed``, both links with their address
  (``127.0.0.1:<port>``), state and since when;
- the device table lists every device as online, the filter narrows it to one, a click on a column
  header sorts by it; with 263 devices it draws 200 rows and says how many more, and the filter
  still finds the others;
- no JavaScript exception, no console error, and every request (HTTP and WebSocket) goes to the
  admin port on 127.0.0.1: the page needs no other origin;
then saves a PNG screenshot (default Sources/Admin/StatusPage.png).
Exit status 0 when every check passes, 1 otherwise (with what was expected and what was seen,
the page's text and the daemon's log tail).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
import websocket  # Debian python3-websocket (websocket-client)

from .procs import Gateway, HarnessError, Mosquitto, Sandbox, free_port, tail, wait_until
from .voice_contract import Listener, MLService, UserService, load_messages

ROOT = Path(__file__).resolve().parents[2]
HUB_ID = "status-hub"
DEVICE_ID = "status-dev-1"
WIDTH, HEIGHT = 1280, 900

# Configuration the daemon would read from the environment, removed so only what we set counts.
_FOREIGN_ENV_PREFIXES = ("ADMIN_", "LIVE_", "ML_", "USERS_", "DIALOG_", "AUDIO_", "REGISTRATION_", "DEVICES_")


class EnvGateway(Gateway):
    """procs.Gateway (config file, log, readiness) plus settings given as environment variables."""

    def __init__(self, *args, environment: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.environment = environment

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
        env.update(self.environment)
        return env


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a plain GET, also for 4xx/5xx."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode("utf-8", "replace")


class CDP:
    """A minimal Chrome DevTools Protocol session on one page target: commands with ids, events
    collected by a reader thread."""

    def __init__(self, ws_url: str):
        # suppress_origin: Chromium refuses DevTools WebSockets that send an Origin it does not allow.
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True, enable_multithread=True)
        self.ws.settimeout(None)
        self.cond = threading.Condition()
        self.results: dict[int, dict] = {}
        self.events: list[dict] = []
        self.next_id = 0
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.ws.recv())
                with self.cond:
                    if "id" in message:
                        self.results[message["id"]] = message
                    else:
                        self.events.append(message)
                    self.cond.notify_all()
        except Exception:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def send(self, method: str, params: dict | None = None, timeout: float = 10) -> dict:
        with self.cond:
            self.next_id += 1
            ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        with self.cond:
            while ident not in self.results:
                remaining = deadline - time.monotonic()
                if self.closed:
                    raise HarnessError(f"CDP: connection to chromium closed while waiting for {method}")
                if remaining <= 0:
                    raise HarnessError(f"CDP: no answer to {method} within {timeout} s")
                self.cond.wait(remaining)
            message = self.results.pop(ident)
        if "error" in message:
            raise HarnessError(f"CDP: {method} failed: {message['error']}")
        return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise HarnessError(f"CDP: evaluating {expression!r} threw {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def events_of(self, method: str) -> list[dict]:
        with self.cond:
            return [e["params"] for e in self.events if e.get("method") == method]

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


class Chromium:
    """Headless chromium with a temporary profile; the DevTools port is the one it picked
    (``--remote-debugging-port=0``, read from DevToolsActivePort), so no port race."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.binary = shutil.which("chromium") or "/usr/bin/chromium"
        self.profile = sandbox.mkdir("chromium-profile")
        self.log = sandbox.path("chromium.log")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def version(self) -> str:
        result = subprocess.run([self.binary, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return result.stdout.strip()

    def start(self, timeout: float = 30) -> None:
        args = [
            self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-crash-reporter", "--disable-extensions", "--disable-default-apps",
            "--mute-audio", "--hide-scrollbars", "--lang=en-US", "--force-device-scale-factor=1",
            f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
        ]
        # HOME and XDG dirs in the sandbox: chromium (and its crash handler) write nothing outside it.
        home = self.sandbox.mkdir("chromium-home")
        env = dict(os.environ, TZ="UTC", LANG="en_US.UTF-8", HOME=str(home),
                   XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
        self.proc = self.sandbox.spawn(args, self.log, env=env)
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(f"chromium exited ({self.proc.returncode}) before its DevTools port was open\n{tail(self.log)}")
            try:
                lines = active.read_text().split()
                if lines:
                    self.port = int(lines[0])
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"chromium: no DevTools port after {timeout} s\n{tail(self.log)}")
            time.sleep(0.05)

    def page_target(self, timeout: float = 15) -> str:
        """webSocketDebuggerUrl of the page target (from the HTTP /json list)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as response:
                    targets = json.loads(response.read())
                for target in targets:
                    if target.get("type") == "page" and target.get("webSocketDebuggerUrl"):
                        return target["webSocketDebuggerUrl"]
                last = json.dumps(targets)[:500]
            except (OSError, ValueError) as error:
                last = str(error)
            time.sleep(0.1)
        raise HarnessError(f"chromium: no page target on http://127.0.0.1:{self.port}/json/list after {timeout} s ({last})")

    def stop(self, cdp: "CDP | None" = None) -> None:
        """Browser.close over CDP (chromium ends its helpers), then SIGKILL to chromium's process
        group for whatever is left (only chromium and its helpers: it was started in its own
        session), then wait for it."""
        if self.proc is None:
            return
        if cdp is not None and self.proc.poll() is None:
            try:
                cdp.send("Browser.close", timeout=3)
                self.proc.wait(timeout=5)
            except (HarnessError, subprocess.TimeoutExpired, OSError):
                pass
        if cdp is not None:
            cdp.close()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


def pcm_frames(count: int = 40) -> list[bytes]:
    """20 ms frames of a 220 Hz tone, 16 kHz mono pcm_s16le (as voice_contract.py sends)."""
    frames = []
    for index in range(count):
        samples = [int(8000 * math.sin(2 * math.pi * 220 * (index * 320 + i) / 16000)) for i in range(320)]
        frames.append(struct.pack("<320h", *samples))
    return frames


PAGE_TEXT = "document.body ? document.body.innerText : '(no body)'"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default=os.environ.get("EDGE_GATEWAY_BIN", ".build/debug/edge-gateway"),
                        help="the daemon binary (default .build/debug/edge-gateway, or EDGE_GATEWAY_BIN)")
    parser.add_argument("--screenshot", default="Sources/Admin/StatusPage.png", help="where to save the PNG (default Sources/Admin/StatusPage.png)")
    parser.add_argument("--timeout", type=float, default=20, help="seconds to wait for the live update (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args(argv)
    gateway_bin = str(Path(args.gateway).resolve())
    screenshot = Path(args.screenshot)
    if not os.access(gateway_bin, os.X_OK):
        print(f"check-status-page: FAIL: no daemon binary at {gateway_bin} (build it, or pass --gateway PATH)")
        return 1

    def terminated(signum, frame):  # CI's timeout or a kill: leave through `finally` (cleanup)
        raise SystemExit(f"check-status-page: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    started = time.monotonic()
    failures: list[str] = []
    summary = ""

    def check(condition: bool, expected: str, seen: object = "") -> None:
        print(("  ok    " if condition else "  FAIL  ") + expected + ("" if condition or seen == "" else f" — saw: {seen}"))
        if not condition:
            failures.append(expected)

    sandbox = Sandbox(Path(tempfile.gettempdir()), "status-page")
    gateway: EnvGateway | None = None
    cdp: CDP | None = None

    def page_text() -> str:
        try:
            return str(cdp.evaluate(PAGE_TEXT)) if cdp else "(no page)"
        except HarnessError as error:
            return f"(page text unavailable: {error})"

    def diagnostics() -> str:
        return "--- page text ---\n" + page_text() + "\n" + (gateway.log_tail(30) if gateway else "")

    try:
        # 1. brokers and services, the daemon with its admin settings from the environment
        pb = load_messages(sandbox.mkdir("pb"))
        ml = MLService(pb)
        sandbox.on_close(lambda: ml.server.stop(0))
        users = ThreadingHTTPServer(("127.0.0.1", 0), UserService)
        threading.Thread(target=users.serve_forever, daemon=True).start()
        sandbox.on_close(users.shutdown)
        broker = Mosquitto(sandbox, "device", persistence=False)
        broker.start()
        admin_port = free_port()
        token = secrets.token_urlsafe(24)
        endpoint = f"127.0.0.1:{ml.port}"
        store = sandbox.path("outbox.db")
        gateway = EnvGateway(sandbox, gateway_bin, broker.port, broker.port, {"store.path": str(store)}, environment={
            "HUB_ID": HUB_ID,
            "ADMIN_PORT": str(admin_port),
            "ADMIN_TOKEN": token,
            "ML_ENDPOINTS": endpoint,
            "ML_CODEC": "pcm_s16le",
            "USERS_BASE_URL": f"http://127.0.0.1:{users.server_address[1]}",
            "STORE_PATH": str(store),
        })
        gateway.start()
        sandbox.on_close(gateway.kill)
        base = f"http://127.0.0.1:{admin_port}"

        def admin_up() -> bool:
            gateway.check_alive()
            try:
                return http_get(base + "/healthz")[0] == 200
            except OSError:
                return False

        wait_until(admin_up, 15, f"the admin API on {base}/healthz", interval=0.1, details=gateway.log_tail)

        # 3a. the page over plain HTTP: 401 without the token
        print(f"status page {base}/ (hub {HUB_ID}, ML endpoint {endpoint}):")
        status, kind, body = http_get(base + "/")
        check(status == 200 and kind.startswith("text/html") and 'id="live"' in body and HUB_ID not in body,
              "GET / without a token answers 200 text/html with the page's shell, which holds no data (no hub id)",
              f"{status} {kind} {body[:120]!r}")
        status, _, body = http_get(base + "/api/status")
        check(status == 401, "GET /api/status (the page's data) without a token answers 401", f"{status} {body[:120]!r}")
        status, _, body = http_get(base + "/api/status?access_token=" + token)
        check(status == 401, "GET /api/status with the token in the query answers 401 (only /live takes it there)",
              f"{status} {body[:120]!r}")
        status, kind, body = http_get(base + "/api/status", {"Authorization": f"Bearer {token}"})
        try:
            hub = json.loads(body).get("hubId")
        except ValueError:
            hub = None
        check(status == 200 and hub == HUB_ID, "GET /api/status with the token answers the hub's status", f"{status} {body[:120]!r}")
        status, _, body = http_get(base + "/", {"Host": f"evil.example:{admin_port}"})
        check(status == 421, "GET / with a foreign Host (DNS rebinding) answers 421", f"{status} {body[:120]!r}")

        # 2. chromium, driven over CDP
        chromium = Chromium(sandbox)
        print(f"  browser: {chromium.version()}")
        chromium.start()
        sandbox.on_close(lambda: chromium.stop(cdp))
        cdp = CDP(chromium.page_target())
        for domain in ("Page", "Runtime", "Network", "Log"):
            cdp.send(f"{domain}.enable")
        cdp.send("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        page_url = f"{base}/#access_token={token}"
        navigation = cdp.send("Page.navigate", {"url": page_url}, timeout=15)
        if navigation.get("errorText"):
            raise HarnessError(f"chromium could not load {base}/: {navigation['errorText']}")
        wait_until(lambda: cdp.evaluate("document.readyState === 'complete' && !!document.getElementById('live')"),
                   15, "the page to load (document.readyState 'complete' and #live present)", interval=0.05, details=diagnostics)
        wait_until(lambda: cdp.evaluate("document.title") == f"edge-gateway · {HUB_ID}", 15,
                   f"the title 'edge-gateway · {HUB_ID}' (the page's script loaded /api/status)", interval=0.05, details=diagnostics)
        print(f"  ok    title 'edge-gateway · {HUB_ID}' (from /api/status)")
        check(cdp.evaluate("location.href") == f"{base}/", "the token is gone from the address bar", cdp.evaluate("location.href"))
        opened = time.monotonic()
        wait_until(lambda: cdp.evaluate("document.getElementById('live').textContent") == "connected", 15,
                   "#live to read 'connected' (the /live WebSocket open)", interval=0.05, details=diagnostics)
        print(f"  ok    #live reads 'connected' after {(time.monotonic() - opened) * 1000:.0f} ms")
        wait_until(lambda: str(cdp.evaluate("document.getElementById('live-seq').textContent")).startswith("#"), 10,
                   "a first status message on /live (#live-seq set; the daemon sends one every 2 s)", interval=0.05,
                   details=diagnostics)
        print("  ok    a status message arrived (#live-seq " + str(cdp.evaluate("document.getElementById('live-seq').textContent")) + ")")

        # 4. a device event and one voice dialog, as a device
        acks = Listener(broker.port, f"device/{DEVICE_ID}/ack", "status-device-acks")
        sandbox.on_close(acks.client.loop_stop)
        replies = Listener(broker.port, f"device/{DEVICE_ID}/response", "status-device-responses")
        sandbox.on_close(replies.client.loop_stop)
        device = mqtt.Client(client_id="status-device", clean_session=True, protocol=mqtt.MQTTv311)
        device.connect("127.0.0.1", broker.port)
        device.loop_start()
        sandbox.on_close(device.loop_stop)
        event = {"eventId": "status-e1", "type": "button", "timestamp": int(time.time() * 1000), "data": {"pressed": True}}
        device.publish(f"device/{DEVICE_ID}/event", json.dumps(event), qos=1).wait_for_publish()
        wait_until(lambda: any(m.get("eventId") == "status-e1" for _, m in acks.snapshot()), 10,
                   "the device event's ack on device/{id}/ack", details=lambda: f"device saw {acks.snapshot()}\n{gateway.log_tail()}")
        ack = next(m for _, m in acks.snapshot() if m.get("eventId") == "status-e1")
        check(ack.get("status") == "stored", "device event on device/{id}/event acked 'stored'", ack)

        session = uuid.uuid4()
        topic = f"device/{DEVICE_ID}/audio"
        frames = pcm_frames()
        start = {"session": str(session), "codec": "pcm_s16le", "sampleRate": 16000, "channels": 1,
                 "language": "en-US", "userId": "u-py"}
        device.publish(topic, b"\x01" + json.dumps(start).encode(), qos=1).wait_for_publish()
        for index, frame in enumerate(frames):
            device.publish(topic, b"\x02" + session.bytes + index.to_bytes(4, "big") + frame, qos=1).wait_for_publish()
        device.publish(topic, b"\x03" + json.dumps({"session": str(session), "lastSeq": len(frames) - 1}).encode(),
                       qos=1).wait_for_publish()
        ended = time.monotonic()
        transcript = MLService.TRANSCRIPT
        probe = ("Array.from(document.querySelectorAll('#recent li')).some(li => li.textContent.includes(%s))"
                 % json.dumps(transcript))
        wait_until(lambda: cdp.evaluate(probe), args.timeout,
                   f"#recent to show the transcript {transcript!r} (live update over /live, no reload)", interval=0.025,
                   details=lambda: (f"device saw: {[m.get('type') for _, m in replies.snapshot()]}\n" + diagnostics()))
        live_ms = (time.monotonic() - ended) * 1000
        answered = any(m.get("type") == "DIALOG_RESPONSE" for _, m in replies.snapshot())
        check(cdp.evaluate("performance.getEntriesByType('navigation').length") == 1
              and cdp.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate",
              "the transcript came without a reload of the page",
              cdp.evaluate("performance.getEntriesByType('navigation').map(e => e.type)"))
        item = cdp.evaluate("document.querySelector('#recent li').textContent")
        check(DEVICE_ID in item and "lights.on" in item and "(Done)" in item,
              f"the newest #recent item names the device, the transcript, intent lights.on and reply 'Done'", item)
        wait_until(lambda: answered or any(m.get("type") == "DIALOG_RESPONSE" for _, m in replies.snapshot()), 5,
                   "the DIALOG_RESPONSE on device/{id}/response", details=diagnostics)

        # 4b. traffic from a dozen devices over some seconds (the chart gets a shape), one broken event
        traffic_devices = [f"sensor-{index:02d}" for index in range(1, 13)]
        sent = 0
        for second in range(8):
            for index, name in enumerate(traffic_devices):
                for burst in range(1 + (index + second) % 3):
                    body = {"eventId": f"t{second}-{burst}", "type": "reading", "timestamp": int(time.time() * 1000),
                            "data": {"celsius": 20 + index / 10}}
                    device.publish(f"device/{name}/telemetry", json.dumps(body), qos=1)
                    sent += 1
            time.sleep(0.5)
        device.publish(f"device/{traffic_devices[0]}/event", b"{not json", qos=1).wait_for_publish()
        # then a trickle (about 8 events/s) until the screenshot, so the page shows current rates
        trickle_stop = threading.Event()

        def trickle() -> None:
            count = 0
            while not trickle_stop.wait(0.125):
                name = traffic_devices[count % len(traffic_devices)]
                body = {"eventId": f"trickle-{count}", "type": "reading", "timestamp": int(time.time() * 1000), "data": {}}
                device.publish(f"device/{name}/telemetry", json.dumps(body), qos=1)
                count += 1

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        sandbox.on_close(lambda: (trickle_stop.set(), trickler.join(5)))

        def number(element_id: str) -> int:
            value = str(cdp.evaluate(f"document.getElementById('{element_id}').textContent")).replace(",", "")
            return int(value) if value.isdigit() else -1

        wait_until(lambda: number("total-stored") >= sent + 1 and number("total-forwarded") >= sent + 1
                   and number("total-rejected") >= 1
                   and "invalid json" in str(cdp.evaluate("document.getElementById('rejected-reasons').textContent")),
                   args.timeout,
                   f"the totals over /live: stored and forwarded >= {sent + 1}, rejected >= 1 with reason 'invalid json'", interval=0.1, details=diagnostics)
        totals = {name: number(f"total-{name}") for name in ("stored", "forwarded", "duplicate", "rejected")}
        check(totals["stored"] >= sent + 1 and totals["forwarded"] >= sent + 1 and totals["rejected"] >= 1,
              f"totals after traffic: stored and forwarded >= {sent + 1}, rejected >= 1", totals)
        reasons = cdp.evaluate("document.getElementById('rejected-reasons').textContent")
        check("invalid json: 1" in reasons, "rejected by reason: 'invalid json: 1'", reasons)
        check("capacity" not in str(cdp.evaluate("document.getElementById('dropped-reasons').textContent")),
              "dropped by reason: none (no cap reached)", cdp.evaluate("document.getElementById('dropped-reasons').textContent"))
        rate_in = cdp.evaluate("document.getElementById('rate-in').textContent")
        check(re.fullmatch(r"\d+(\.\d)?", str(rate_in)) is not None, "events/s in shows a number", repr(rate_in))

        # the rest of the page as the screenshot will show it; a fresh status message first
        seq = cdp.evaluate("document.getElementById('live-seq').textContent")
        wait_until(lambda: cdp.evaluate("document.getElementById('live-seq').textContent") != seq
                   and cdp.evaluate("document.querySelectorAll('#recent li').length") >= 1, 10,
                   "another message on /live after the dialog", interval=0.05, details=diagnostics)
        depth = cdp.evaluate("document.getElementById('depth').textContent")
        check(re.fullmatch(r"\d+", str(depth)) is not None, "#depth shows a number", repr(depth))
        oldest = cdp.evaluate("document.getElementById('oldest').textContent")
        check(oldest == "nothing waiting" or oldest.endswith(" ago"), "the oldest waiting event's age is shown", repr(oldest))
        disk_total = str(cdp.evaluate("document.getElementById('disk-total').textContent"))
        check(re.match(r"[\d.]+ (bytes|KiB|MiB|GiB) since start", disk_total) is not None,
              "the outbox section shows the bytes the store wrote since start", repr(disk_total))
        problems = cdp.evaluate("Array.from(document.querySelectorAll('#problems tr')).map(r => Array.from(r.cells).map(c => c.textContent))")
        check(any(len(row) == 3 and row[1].startswith("warning") and "rejected device event" in row[2] and "invalid json" in row[2]
                  for row in problems),
              "recent warnings and errors list the rejected broken event with its reason", problems)
        check(cdp.evaluate("document.getElementById('hub').textContent") == HUB_ID, f"#hub shows {HUB_ID}",
              cdp.evaluate("document.getElementById('hub').textContent"))
        address = f"127.0.0.1:{broker.port}"
        links = cdp.evaluate("Array.from(document.querySelectorAll('#link-device td, #link-upstream td')).map(c => c.textContent)")
        check(bool(links) and links[:3] == ["device broker", address, "subscribed"] and links[4:7] == ["upstream", address, "connected"]
              and all(re.match(r"\d\d:\d\d:\d\d \(", cell) for cell in (links[3], links[7])),
              f"Links: device broker {address} 'subscribed', upstream {address} 'connected', each with since when", links)
        rows = cdp.evaluate("Array.from(document.querySelectorAll('#endpoints tr')).map(r => Array.from(r.cells).map(c => c.textContent))")
        check(bool(rows) and rows[0][:2] == [endpoint, "closed"], f"ML endpoints: {endpoint} with breaker 'closed'", rows)
        axes = cdp.evaluate("Array.from(document.querySelectorAll('#axes text')).map(t => t.textContent)")
        check(bool(axes) and "events/s" in axes and sum(bool(re.fullmatch(r"\d\d:\d\d:\d\d", t)) for t in axes) >= 2
              and sum(bool(re.fullmatch(r"\d+(\.\d)?", t)) for t in axes) >= 3,
              "the chart has axes: events/s with ticks, and clock times", axes)
        points = cdp.evaluate("document.getElementById('line-in').getAttribute('points')")
        check(bool(points and points.strip()), "the chart has points for events/s in", repr(points))

        # the device table: every device, a filter, sorting by a column header
        table = "Array.from(document.querySelectorAll('#device-rows tr')).map(r => r.cells[0].textContent)"
        listed = cdp.evaluate(table)
        check(set(traffic_devices + [DEVICE_ID]) <= set(listed), f"the device table lists the {len(traffic_devices) + 1} devices", listed)
        online = cdp.evaluate("Array.from(document.querySelectorAll('#device-rows tr')).map(r => r.cells[1].textContent)")
        check(bool(online) and all(state == "online" for state in online), "every device is online (sent just now)", online)
        cdp.evaluate("(() => { const f = document.getElementById('device-filter'); f.value = 'sensor-07';"
                     " f.dispatchEvent(new Event('input')); })()")
        filtered = cdp.evaluate(table)
        check(filtered == ["sensor-07"], "the filter 'sensor-07' leaves that one device", filtered)
        cdp.evaluate("(() => { const f = document.getElementById('device-filter'); f.value = 'sensor';"
                     " f.dispatchEvent(new Event('input')); document.querySelector('#device-table th[data-key=deviceId]').click(); })()")
        ordered = cdp.evaluate(table)
        check(ordered == sorted(traffic_devices), "filter 'sensor' and a click on the device header: the sensors by id", ordered)
        cdp.evaluate("(() => { const f = document.getElementById('device-filter'); f.value = '';"
                     " f.dispatchEvent(new Event('input')); document.querySelector('#device-table th[data-key=events]').click(); })()")
        by_events = cdp.evaluate("Array.from(document.querySelectorAll('#device-rows tr')).map(r => Number(r.cells[3].textContent.replace(/,/g, '')))")
        check(bool(by_events) and by_events == sorted(by_events, reverse=True), "a click on the events header sorts by events, most first", by_events)

        # hundreds of devices: at most 200 rows drawn, the rest counted, the filter still finds them
        bulk = [f"bulk-{index:03d}" for index in range(250)]
        for name in bulk:
            body = {"eventId": "b1", "type": "reading", "timestamp": int(time.time() * 1000), "data": {}}
            device.publish(f"device/{name}/telemetry", json.dumps(body), qos=1)
        total = len(bulk) + len(traffic_devices) + 1
        wait_until(lambda: len(cdp.evaluate(table)) == 200
                   and str(cdp.evaluate("document.getElementById('device-count').textContent")).startswith(f"{total} seen"),
                   args.timeout, f"the device table with {total} devices: 200 rows drawn", interval=0.1, details=diagnostics)
        more = cdp.evaluate("document.getElementById('device-more').textContent")
        check(f"{total - 200} more" in more, f"{total} devices: 200 rows and '{total - 200} more'", more)
        cdp.evaluate("(() => { const f = document.getElementById('device-filter'); f.value = 'bulk-2';"
                     " f.dispatchEvent(new Event('input')); })()")
        filtered = cdp.evaluate(table)
        check(sorted(filtered) == [name for name in bulk if name.startswith("bulk-2")], "the filter 'bulk-2' finds its 50 devices",
              len(filtered))
        cdp.evaluate("(() => { const f = document.getElementById('device-filter'); f.value = '';"
                     " f.dispatchEvent(new Event('input')); })()")

        # 3b. nothing but the admin origin, and no JavaScript errors
        origin_http, origin_ws = f"{base}/", f"ws://127.0.0.1:{admin_port}/"
        requested = [e["request"]["url"] for e in cdp.events_of("Network.requestWillBeSent")]
        sockets = [e["url"] for e in cdp.events_of("Network.webSocketCreated")]
        foreign = [u for u in requested if not u.startswith(origin_http)] + [u for u in sockets if not u.startswith(origin_ws)]
        check(bool(requested) and not foreign,
              f"every request goes to {base} ({len(requested)} HTTP: {', '.join(u[len(base):].split('?')[0] for u in requested)};"
              f" {len(sockets)} WebSocket)", foreign or requested)
        check(any(u.startswith(origin_ws + "live?") for u in sockets), "the page opened ws://…/live", sockets)
        exceptions = [e["exceptionDetails"] for e in cdp.events_of("Runtime.exceptionThrown")]
        console = [e for e in cdp.events_of("Runtime.consoleAPICalled") if e.get("type") in ("error", "assert")]
        logged = [e["entry"] for e in cdp.events_of("Log.entryAdded") if e["entry"].get("level") == "error"]
        check(not exceptions, "no JavaScript exception",
              [f"{d.get('exception', {}).get('description') or d.get('text')}"
               f" (at {d.get('url') or 'script'}:{d.get('lineNumber', -1) + 1}:{d.get('columnNumber', -1) + 1})"
               for d in exceptions])
        check(not console and not logged, "no console or log errors",
              [" ".join(str(a.get("value", a.get("description"))) for a in e.get("args", [])) for e in console]
              + [f"{e.get('source')}: {e.get('text')} {e.get('url', '')}" for e in logged])
        if any(str(e.get("url", "")).endswith("/favicon.ico") for e in logged):
            print("        (the page has no <link rel=\"icon\">, so the browser asks for /favicon.ico, which the token"
                  " middleware answers 401; e.g. <link rel=\"icon\" href=\"data:,\"> in the <head> of"
                  " Sources/Admin/StatusPage.swift avoids the request)")

        # 5. the screenshot (the trickle still running: current rates above zero)
        shot = base64.b64decode(cdp.send("Page.captureScreenshot", {"format": "png"}, timeout=20)["data"])
        trickle_stop.set()
        trickler.join(5)
        size = struct.unpack(">II", shot[16:24]) if shot[:8] == b"\x89PNG\r\n\x1a\n" else None
        check(size == (WIDTH, HEIGHT), f"screenshot is a {WIDTH}x{HEIGHT} PNG", size)
        check(gateway.running, "the daemon is still running")
        if failures:  # keep the committed screenshot; this one is for looking into the failure
            screenshot = Path(tempfile.gettempdir()) / f"status-page-failed-{os.getpid()}.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        temporary = screenshot.with_name(screenshot.name + ".tmp")
        temporary.write_bytes(shot)
        temporary.replace(screenshot)
        if failures:
            print(f"        screenshot of the failing page: {screenshot}")
        summary = f"status page: live update after {live_ms:.0f} ms, screenshot {args.screenshot}"
    except HarnessError as error:  # its message has the details (page text, log tail) where they help
        failures.append(str(error).splitlines()[0])
        print(f"  FAIL  {error}")
    except Exception as error:  # a crash of the check itself: still clean up and say what happened
        failures.append(f"{type(error).__name__}: {error}")
        print(f"  FAIL  {type(error).__name__}: {error}")
        print(diagnostics())
    else:
        if failures:
            print(diagnostics())
    finally:
        sandbox.close(keep=args.keep)
        if args.keep:
            print(f"  kept {sandbox.dir}")
    elapsed = time.monotonic() - started
    if failures:
        print(f"status page: FAIL ({len(failures)}) after {elapsed:.1f} s: " + "; ".join(failures))
        return 1
    print(f"{summary} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
