#!/usr/bin/env bash
# The daemon's memory over time, measured alone: two mosquitto brokers on free loopback ports and
# one edge-gateway, nothing else of ours running (PSS divides a shared page among the processes
# that map it, so what else runs moves it). RSS, PSS and private dirty from
# /proc/PID/smaps_rollup at 5 s and then every 30 s, /proc/PID/smaps at 5 s and at the end, and the
# page faults taken after 5 s (perf record -e page-faults), which show whether code is still being
# mapped.
#
#   Tests/Benchmarks/idle_alone.sh BIN [SECONDS] [voice]     # voice: one ml.endpoints entry nobody answers
#   IDLE_EXTRA='memory: {releaseStartupPagesSeconds: 0}' Tests/Benchmarks/idle_alone.sh BIN 95
#                                                            # IDLE_EXTRA: more lines for the configuration
#   IDLE_STORE=DIR/outbox.db Tests/Benchmarks/idle_alone.sh BIN 95
#                                                            # IDLE_STORE: a copy of this store is the outbox (a backlog;
#                                                            # outbox-bench --events 1000000 --keep 1 makes one), and the
#                                                            # upstream port is one nobody listens on: the backlog stays
#
# Prints the samples; leaves mem.txt, smaps.5, smaps.end, perf.data and the logs in a directory it
# names. Summarise the faults with: perf report -i DIR/perf.data --stdio --sort dso,sym
set -euo pipefail
bin=$1
seconds=${2:-240}
voice=${3:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/idle-alone.XXXXXX")
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

dport=$(free_port); uport=$(free_port); aport=$(free_port); mlport=$(free_port)
for port in "$dport" "$uport"; do
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' "$port" >"$dir/mosquitto-$port.conf"
    mosquitto -c "$dir/mosquitto-$port.conf" >"$dir/mosquitto-$port.log" 2>&1 &
    pids+=($!)
done
{
    echo "hub: {id: idle}"
    echo "mqtt: {port: $dport}"
    if [[ -n "${IDLE_STORE:-}" ]]; then echo "upstream: {port: $(free_port)}"; else echo "upstream: {port: $uport}"; fi
    echo "admin: {port: $aport}"
    echo "log: {level: info, format: text}"
    [[ "$voice" == voice ]] && echo "ml: {endpoints: [\"127.0.0.1:$mlport\"]}"
    echo "store: {path: $dir/outbox.db, requireSyncedClock: false}"
    if [[ -n "${IDLE_EXTRA:-}" ]]; then echo "$IDLE_EXTRA"; fi
} >"$dir/gateway.yaml"
if [[ -n "${IDLE_STORE:-}" ]]; then cp "$IDLE_STORE" "$dir/outbox.db"; fi
sleep 0.5
"$bin" run --config "$dir/gateway.yaml" >"$dir/gateway.log" 2>&1 &
gw=$!
pids+=("$gw")
for _ in $(seq 200); do grep -q "gateway ready" "$dir/gateway.log" && break; sleep 0.05; done
grep -q "gateway ready" "$dir/gateway.log" || { echo "idle_alone: the gateway did not get ready" >&2; tail "$dir/gateway.log" >&2; exit 1; }

mem() {
    awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_Dirty:/ {d = $2} END {printf "RSS %d kB, PSS %d kB, private dirty %d kB", r, p, d}' \
        "/proc/$gw/smaps_rollup"
}
sleep 5
echo "t=5 s: $(mem)" | tee "$dir/mem.txt"
cp "/proc/$gw/smaps" "$dir/smaps.5"
perf record -e page-faults -c 1 -p "$gw" -o "$dir/perf.data" -- sleep $((seconds - 5)) >"$dir/perf.out" 2>&1 &
perf_pid=$!
for t in $(seq 35 30 "$seconds"); do
    sleep 30
    echo "t=$t s: $(mem)" | tee -a "$dir/mem.txt"
done
cp "/proc/$gw/smaps" "$dir/smaps.end"
wait "$perf_pid" || true
echo "page faults after 5 s: $(perf report -i "$dir/perf.data" --stdio 2>/dev/null | awk '/^# Samples:/ {print $3}')"
echo "kept in $dir"
