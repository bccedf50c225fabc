#!/bin/sh
# The numbers of docs/performance.md's TAP table: in one batch, the TAP ceiling (tapbench, plain
# frames) then the managed stack (plain, then with offload), RUNS times. Needs root.
#   tools/tapbench/compare.sh [RUNS] [SECONDS]
set -eu
RUNS=${1:-3}; S=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
make -s -C "$HERE" tapbench
dotnet build -c Release -nologo -v q "$ROOT/tools/TcpLab.Benchmarks" >/dev/null
BENCH="$ROOT/tools/TcpLab.Benchmarks/bin/Release/net10.0/TcpLab.Benchmarks.dll"
for r in $(seq "$RUNS"); do
  echo "== run $r"
  "$HERE/run.sh" 144 "$S" plain
  taskset -c 0 dotnet "$BENCH" bulk-tap --n 145 --seconds "$S" --tapbench "$HERE/tapbench" | sed 's/^/managed plain /'
  taskset -c 0 dotnet "$BENCH" bulk-tap --n 146 --seconds "$S" --offload --tapbench "$HERE/tapbench" | sed 's/^/managed offload /'
done
