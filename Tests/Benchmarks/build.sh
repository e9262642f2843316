#!/usr/bin/env bash
# Builds the C load tools (loadgen, sink, publisher, relay) against libmosquitto.
#
#   Tests/Benchmarks/build.sh [OUT_DIR]      # default: Tests/Benchmarks/bin (git-ignored)
#
# Needs gcc and libmosquitto-dev (Debian: apt-get install libmosquitto-dev).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$src/bin}
mkdir -p "$out"
for tool in loadgen sink publisher relay; do
    gcc -O2 -Wall -Wextra -o "$out/$tool" "$src/$tool.c" -lmosquitto -lpthread
done
echo "built loadgen sink publisher relay in $out"
