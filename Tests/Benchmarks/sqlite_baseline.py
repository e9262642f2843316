#!/usr/bin/python3
"""Baseline for the store-alone benchmark: what SQLite itself does from Python on this machine.

One table (seq, device, event_id, payload), WAL, the given synchronous mode, ROWS rows of SIZE
payload bytes inserted in transactions of BATCH rows (executemany, so the loop is in C).

    sqlite_baseline.py [--rows 400000] [--size 256] [--batch 1000] [--synchronous full|normal] [--dir D]

Prints one line: rows= seconds= rows_per_s=
"""
import argparse
import os
import sqlite3
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=400_000)
parser.add_argument("--size", type=int, default=256)
parser.add_argument("--batch", type=int, default=1000)
parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
parser.add_argument("--dir", default=None)
args = parser.parse_args()

directory = args.dir or tempfile.mkdtemp(prefix="sqlite-baseline-")
os.makedirs(directory, exist_ok=True)
path = os.path.join(directory, "baseline.db")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)

db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute(f"PRAGMA synchronous={args.synchronous.upper()}")
db.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY, device TEXT NOT NULL, event_id TEXT NOT NULL, payload BLOB NOT NULL)")
payload = b"x" * args.size
start = time.perf_counter()
for first in range(0, args.rows, args.batch):
    rows = [(i + 1, f"dev-{i % 8}", f"e{i}", payload) for i in range(first, min(first + args.batch, args.rows))]
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
    db.execute("COMMIT")
seconds = time.perf_counter() - start
db.close()
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
print(f"rows={args.rows} seconds={seconds:.3f} rows_per_s={args.rows / seconds:.0f}")
