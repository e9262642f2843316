#!/usr/bin/python3
"""Start -> READY=1: runs a command with NOTIFY_SOCKET pointing at a datagram socket of our own,
as systemd would, and reports the milliseconds from exec to the READY=1 notification. Then it
stops the command with SIGTERM. Standard input is passed through (for --config /dev/stdin).

    time_to_ready.py [--timeout 30] -- COMMAND ARGS...

Prints one line: ready_ms=  (exit 1 when READY=1 does not come in time)
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--timeout", type=float, default=30)
parser.add_argument("command", nargs=argparse.REMAINDER)
args = parser.parse_args()
command = args.command[1:] if args.command[:1] == ["--"] else args.command

directory = tempfile.mkdtemp(prefix="notify-")
path = os.path.join(directory, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
env = dict(os.environ, NOTIFY_SOCKET=path)
start = time.monotonic()
process = subprocess.Popen(command, env=env, stdin=sys.stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready_ms = None
sock.settimeout(0.2)
while time.monotonic() - start < args.timeout and process.poll() is None:
    try:
        message = sock.recv(4096).decode(errors="replace")
    except socket.timeout:
        continue
    if "READY=1" in message.split("\n"):
        ready_ms = (time.monotonic() - start) * 1000
        break
process.send_signal(signal.SIGTERM)
try:
    process.wait(timeout=15)
except subprocess.TimeoutExpired:
    process.kill()
sock.close()
os.remove(path)
os.rmdir(directory)
if ready_ms is None:
    print("ready_ms=0")
    sys.exit(1)
print(f"ready_ms={ready_ms:.0f}")
