#!/usr/bin/env bash
# Memory and stalls of a flood onto a big backlog: a store of 1,000,000 256-byte events (more than the
# default store.maxBytes, so dropOldest must evict about 160,000 of them), the upstream down, and 20
# devices x 1,000 more events (acks on). For each binary given, in turn on copies of the same store:
# RSS and anonymous memory before, at the peak (sampled every 100 ms) and after, and the longest
# wait of an event for its commit (the ingress's commit_window_max_ms, logged at stop).
#
#   Tests/Benchmarks/backlog_flood.sh BIN [BIN...]      # e.g. a baseline build and this one
#
# Needs the C tools (Tests/Benchmarks/build.sh) and a release outbox-bench
# (swift build -c release --product outbox-bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TOOLS=${TOOLS:-Tests/Benchmarks/bin}
T=${OUT:-/tmp/backlog-flood}
rm -rf "$T"; mkdir -p "$T"
"$(swift build -c release --show-bin-path)/outbox-bench" --events 1000000 --size 256 --producers 8 --batch 250 \
    --dir "$T/backlog" --keep 1 >/dev/null 2>&1
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mem() { awk '/^Rss:/ {r=$2} /^Anonymous:/ {a=$2} END {printf "%d %d\n", r, a}' "/proc/$1/smaps_rollup"; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for gw in "$@"; do
    run="$T/run"; rm -rf "$run"; mkdir -p "$run"
    cp "$T/backlog/outbox.db" "$run/outbox.db"
    dp=$(free_port); up=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n' "$dp" >"$run/dev.conf"
    mosquitto -c "$run/dev.conf" >"$run/dev.log" 2>&1 &
    broker=$!; pids+=("$broker")
    sleep 0.3
    printf 'hub: {id: bench}\nmqtt: {port: %s, clientId: flood}\nupstream: {port: %s}\nlog: {level: info, format: text}\nadmin: {enabled: false}\nstore: {path: %s/outbox.db, requireSyncedClock: false}\n' \
        "$dp" "$up" "$run" >"$run/gw.yaml"
    "$gw" run --config "$run/gw.yaml" >"$run/gw.log" 2>&1 &
    pid=$!; pids+=("$pid")
    for _ in $(seq 400); do grep -q "gateway ready" "$run/gw.log" && break; sleep 0.05; done
    sleep 10  # the per-device count of a store opened with a backlog runs first
    read -r rss0 anon0 < <(mem "$pid")
    ( peak_r=0; peak_a=0
      while kill -0 "$pid" 2>/dev/null && [[ ! -e "$run/stop" ]]; do
          read -r r a < <(mem "$pid") || break
          ((r > peak_r)) && peak_r=$r; ((a > peak_a)) && peak_a=$a
          echo "$peak_r $peak_a" >"$run/peak"; sleep 0.1
      done ) &
    sampler=$!
    lg=$("$TOOLS/loadgen" -p "$dp" -d 20 -n 1000 --acks -i flood-)
    read -r rss1 anon1 < <(mem "$pid")
    touch "$run/stop"; wait "$sampler" || true
    read -r peak_r peak_a <"$run/peak"
    kill -TERM "$pid"; wait "$pid" || true
    kill -TERM "$broker"; wait "$broker" 2>/dev/null || true
    window=$(grep -o 'commit_window_max_ms=[0-9.]*' "$run/gw.log" | cut -d= -f2)
    acked=$(sed -n 's/.*acks_stored=\([0-9]*\).*/\1/p' <<<"$lg")
    seconds=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$lg")
    echo "$gw: $acked acked stored in $seconds s; RSS kB before $rss0, peak $peak_r, after $rss1; anonymous kB before $anon0, peak $peak_a, after $anon1; longest commit wait $window ms"
done
