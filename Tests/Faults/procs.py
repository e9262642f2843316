"""Processes the suite starts, and making sure every one of them goes away.

Everything listens on 127.0.0.1 on free ports. Every child process is started in its own session
(so a Ctrl-C in the terminal reaches only the suite, which then cleans up in order) and is
registered in ``Sandbox``; ``Sandbox.close()`` SIGKILLs what still runs (by pid, only what this
suite started), unmounts what it mounted and removes its temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# Environment variables the daemon would read as configuration (every key can be set that way):
# removed from its environment so only the config file the suite writes decides.
_CONFIG_ENV_PREFIXES = ("HUB_", "MQTT_", "UPSTREAM_", "STORE_", "LIMITS_", "LOG_")
_SYSTEMD_ENV = {"STATE_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}


class HarnessError(Exception):
    """The suite could not do what a scenario asked (a timeout, a process that would not start)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05,
               details: Callable[[], str] | None = None) -> None:
    """Polls ``condition`` until it holds; HarnessError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:.0f} s waiting for {what}"
            if details:
                message += "\n" + details()
            raise HarnessError(message)
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as error:
        return f"({path}: {error})"
    return "\n".join(text.splitlines()[-lines:])


class Sandbox:
    """A temporary directory plus every process and mount created in it; ``close()`` undoes all."""

    def __init__(self, root: Path, name: str):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        self.processes: list[subprocess.Popen] = []
        self.mounts: list[Path] = []
        self.cleanups: list[Callable[[], None]] = []

    def path(self, name: str) -> Path:
        return self.dir / name

    def mkdir(self, name: str) -> Path:
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def spawn(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts a child in its own session, stdout and stderr appended to ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self.processes.append(proc)
        return proc

    def on_close(self, cleanup: Callable[[], None]) -> None:
        self.cleanups.append(cleanup)

    def close(self, keep: bool = False) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception:
                pass
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    proc.kill()
                except OSError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for mount in reversed(self.mounts):
            subprocess.run(["umount", str(mount)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Mosquitto:
    """A real mosquitto broker with persistence, restartable on the same port."""

    def __init__(self, sandbox: Sandbox, name: str, port: int | None = None, persistence: bool = True):
        self.sandbox = sandbox
        self.name = name
        self.port = port or free_port()
        self.dir = sandbox.mkdir(f"broker-{name}")
        self.config = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Without `user root` mosquitto (started as root) drops to user mosquitto and then
            # cannot write its persistence file in our directory: it fails silently.
            "user root",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            # Queue without a count limit for offline persistent sessions (the default 1000 would
            # drop events during a gateway restart under load).
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10) -> None:
        if self.running:
            return
        self.proc = self.sandbox.spawn([MOSQUITTO, "-c", str(self.config)], self.dir / "mosquitto.out")
        deadline = time.monotonic() + timeout
        while not accepts_connections(self.port):
            if self.proc.poll() is not None:
                raise HarnessError(f"mosquitto {self.name} exited ({self.proc.returncode}) before listening\n"
                                   + tail(self.dir / "mosquitto.out") + "\n" + tail(self.log))
            if time.monotonic() > deadline:
                raise HarnessError(f"mosquitto {self.name} not listening on {self.port} after {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence (queued messages, sessions) on the way out."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._wait_port_free()

    def kill(self) -> None:
        """SIGKILL: whatever was not yet autosaved (autosave_interval 1 s) is gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._wait_port_free()

    def _wait_port_free(self) -> None:
        deadline = time.monotonic() + 5
        while accepts_connections(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(flat: dict[str, object]) -> str:
    """Dotted keys (``store.path``) to the nested YAML the daemon reads."""
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    lines: list[str] = []

    def emit(node: dict, depth: int) -> None:
        for key in sorted(node):
            value = node[key]
            if isinstance(value, dict):
                lines.append("  " * depth + f"{key}:")
                emit(value, depth + 1)
            else:
                lines.append("  " * depth + f"{key}: {_yaml_scalar(value)}")

    emit(tree, 0)
    return "\n".join(lines) + "\n"


class GatewayCrashed(Exception):
    """The daemon exited although nobody asked it to."""


class Gateway:
    """The real edge-gateway daemon: ``run --config FILE``, one log file per run (cycle)."""

    READY = "gateway ready"

    def __init__(self, sandbox: Sandbox, binary: str, device_port: int, upstream_port: int,
                 overrides: dict[str, object] | None = None, name: str = "gateway"):
        self.sandbox = sandbox
        self.binary = binary
        self.dir = sandbox.mkdir(name)
        self.config_file = self.dir / "gateway.yaml"
        self.store_path = Path(str((overrides or {}).get("store.path", self.dir / "outbox.db")))
        self.settings: dict[str, object] = {
            "hub.id": "faults",
            "mqtt.host": "127.0.0.1",
            "mqtt.port": device_port,
            "mqtt.reconnectBaseMs": 100,
            "mqtt.reconnectCapMs": 500,
            "upstream.host": "127.0.0.1",
            "upstream.port": upstream_port,
            "upstream.reconnectBaseMs": 100,
            "upstream.reconnectCapMs": 1000,
            "upstream.connectTimeoutSeconds": 2,
            "store.path": str(self.store_path),
            # This machine's clock reports itself unsynchronised; expiry is not what we test.
            "store.requireSyncedClock": False,
            # Each its own admin port: with the default (8080) a gateway still stopping, or anything
            # else on the machine, would take the API from the next and fill its log with retries.
            "admin.port": free_port(),
            "log.level": "info",
            "log.format": "text",
        }
        self.settings.update(overrides or {})
        self.config_file.write_text(to_yaml(self.settings))
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self.log: Path | None = None
        self.crashes: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items()
                if k not in _SYSTEMD_ENV and not k.startswith(_CONFIG_ENV_PREFIXES)}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log and self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.log} (last {lines} lines) ---\n" + (tail(self.log, lines) if self.log else "(no run)")

    def spawn(self) -> None:
        """Starts a run without waiting for readiness (a crash loop may kill it during start-up)."""
        if self.running:
            raise HarnessError("gateway already running")
        self.runs += 1
        self.log = self.dir / f"gateway-run{self.runs:03d}.log"
        self.proc = self.sandbox.spawn([self.binary, "run", "--config", str(self.config_file)], self.log, env=self.env)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.READY not in self.log_text():
            if self.proc.poll() is not None:
                self._crashed(f"exited with status {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise HarnessError(f"gateway not ready after {timeout} s\n{self.log_tail()}")
            time.sleep(0.02)

    def start(self, timeout: float = 30) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def check_alive(self) -> None:
        """Raises GatewayCrashed when the daemon exited on its own."""
        if self.proc is not None and self.proc.poll() is not None:
            self._crashed(f"exited on its own with status {self.proc.returncode}")

    def _crashed(self, what: str) -> None:
        message = f"gateway run {self.runs} (pid {self.proc.pid}) {what}\n{self.log_tail(60)}"
        self.crashes.append(message)
        self.proc = None
        raise GatewayCrashed(message)

    def kill(self) -> None:
        """SIGKILL, as a crash or power cut of the process would (the kernel keeps what was written)."""
        self.check_alive()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def terminate(self, grace: float = 30) -> int:
        """SIGTERM and wait for the orderly exit; returns the exit status."""
        self.check_alive()
        proc = self.proc
        if proc is None:
            raise HarnessError("gateway not running")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise HarnessError(f"gateway did not stop within {grace} s of SIGTERM\n{self.log_tail()}")
        self.proc = None
        return code

    def terminate_then_kill(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds if it is still running. Returns the exit
        status when it exited on its own within the grace, None when it had to be killed."""
        self.check_alive()
        proc = self.proc
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        self.proc = None
        return code

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args, "--config", str(self.config_file)], env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              stdin=subprocess.DEVNULL, text=True)

    def stats(self) -> dict:
        """``edge-gateway outbox stats --json`` (read-only, safe while the daemon runs)."""
        result = self.cli("outbox", "stats", "--json")
        if result.returncode != 0:
            raise HarnessError(f"outbox stats failed ({result.returncode}): {result.stderr.strip()}")
        return json.loads(result.stdout)

    def wait_drained(self, timeout: float) -> dict:
        """Polls ``outbox stats`` until the outbox is empty."""
        last: dict = {}

        def empty() -> bool:
            nonlocal last
            self.check_alive()
            last = self.stats()
            return last.get("depth") == 0

        wait_until(empty, timeout, "the outbox to drain (depth 0)", interval=0.3,
                   details=lambda: f"last stats: {json.dumps(last)[:500]}\n{self.log_tail()}")
        return last

    def rss_kb(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None
