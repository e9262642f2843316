#!/usr/bin/env bash
# One end-to-end flood through the gateway (section 2's load: 20 devices x 2000 256-byte events,
# QoS 1, acks on, a fresh device broker and upstream broker), printing the loadgen and sink lines,
# the rate as section 2 counts it and the gateway's CPU time; with PERF=1 also `perf record -g` of the gateway into $OUT/perf.data
# (read it with `perf report -i $OUT/perf.data --children --sort sym`).
#
#   GW=.build/release/edge-gateway [ACKQOS=1] [UNIX=1] [PERF=1] [OUT=/tmp/e2e-profile] Tests/Benchmarks/e2e_profile.sh
#
# UNIX=1: the device broker also listens on a Unix socket, and the gateway connects there
# (mqtt.unixSocket); the devices stay on TCP. The device broker's CPU time is printed too.
# METRICS=1: the gateway's /metrics sampled every 50 ms during the flood (metrics_sampler.py, into
# $OUT/metrics), and when all events were stored and forwarded is printed (the sampler costs CPU too).
#
# Needs the C tools (Tests/Benchmarks/build.sh; TOOLS= their directory, default Tests/Benchmarks/bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
GW=${GW:-.build/release/edge-gateway}; ACKQOS=${ACKQOS:-1}; T=${OUT:-/tmp/e2e-profile}; TOOLS=${TOOLS:-Tests/Benchmarks/bin}
rm -rf "$T"; mkdir -p "$T/dev" "$T/up"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
DP=$(free_port); UP=$(free_port); AP=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for b in dev up; do
    p=$DP; [[ $b == up ]] && p=$UP
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location %s/%s/\nmax_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n' \
        "$p" "$T" "$b" >"$T/$b.conf"
    [[ $b == dev && -n "${UNIX:-}" ]] && printf 'listener 0 %s/dev.sock\n' "$T" >>"$T/$b.conf"
    mosquitto -c "$T/$b.conf" >"$T/$b.log" 2>&1 &
    pids+=($!)
done
sleep 0.5
cat >"$T/gw.yaml" <<YAML
hub: {id: bench}
mqtt: {port: $DP, clientId: gw-profile$([[ -n "${UNIX:-}" ]] && echo ", unixSocket: $T/dev.sock")}
upstream: {port: $UP, reconnectBaseMs: 50, reconnectCapMs: 200}
log: {level: info, format: text}
admin: {port: $AP}
devices: {ackQos: $ACKQOS}
store:
  path: $T/outbox.db
  requireSyncedClock: false
YAML
"$GW" run --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
gw=$!; pids+=("$gw")
for _ in $(seq 100); do grep -q "gateway ready" "$T/gw.log" && break; sleep 0.05; done
"$TOOLS/sink" -p "$UP" -t 'hubs/#' -n 40000 -T 300 -c sink-profile --ready-file "$T/ready" >"$T/sink.out" &
sink=$!
for _ in $(seq 100); do [[ -e "$T/ready" ]] && break; sleep 0.02; done
if [[ -n "${PERF:-}" ]]; then perf record -F 3000 -g -o "$T/perf.data" -p "$gw" 2>"$T/perf.err" & perf_pid=$!; sleep 0.3; fi
if [[ -n "${METRICS:-}" ]]; then python3 Tests/Benchmarks/metrics_sampler.py "$AP" "$T/metrics" & sampler=$!; sleep 0.3; fi
before=$(awk '{print $14 + $15}' "/proc/$gw/stat")
lg=$("$TOOLS/loadgen" -p "$DP" -d 20 -n 2000 --acks -i lg-)
wait "$sink"
if [[ -n "${METRICS:-}" ]]; then sleep 0.5; kill "$sampler"; wait "$sampler" || true; fi
after=$(awk '{print $14 + $15}' "/proc/$gw/stat")
if [[ -n "${PERF:-}" ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
echo "loadgen: $lg"
echo "sink: $(cat "$T/sink.out")"
# As scripts/bench section 2 counts it: from the first device publish to the last upstream arrival.
first=$(sed -n 's/.*first_ns=\([0-9]*\).*/\1/p' <<<"$lg"); last=$(sed -n 's/.*last_ns=\([0-9]*\).*/\1/p' "$T/sink.out")
echo "rate events/s: $(awk -v s="$first" -v e="$last" 'BEGIN {printf "%.0f", 40000 / ((e - s) / 1e9)}')"
echo "device broker CPU s: $(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/${pids[0]}/stat")"
echo "gateway CPU s: $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')"
if [[ -n "${METRICS:-}" ]]; then python3 Tests/Benchmarks/metrics_sampler.py --summary "$T/metrics" 40000; fi
