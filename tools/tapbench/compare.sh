#!/bin/sh
# The numbers of docs/performance.md's TAP table. One batch, RUNS times: the TAP ceiling
# (tapbench, plain frames and vnet frames), then the managed stack (plain, then with offload),
# each direction; at the end the median of each column and the managed/ceiling ratios of the
# medians, plain against plain and offload against vnet. Needs root.
#   tools/tapbench/compare.sh [RUNS] [SECONDS]
# Pinning: the TAP side (tapbench, or the whole .NET process) on CPU 0, the kernel-side socket
# program on CPU 1 (see run.sh and bulk-tap).
set -eu
RUNS=${1:-5}; S=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
make -s -C "$HERE" tapbench
dotnet build -c Release -nologo -v q "$ROOT/tools/TcpLab.Benchmarks" >/dev/null
BENCH="$ROOT/tools/TcpLab.Benchmarks/bin/Release/net10.0/TcpLab.Benchmarks.dll"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
for r in $(seq "$RUNS"); do
  echo "== run $r"
  {
    "$HERE/run.sh" 164 "$S" "plain vnet" | sed 's/^/ceiling /'
    taskset -c 0 dotnet "$BENCH" bulk-tap --n 165 --seconds "$S" --tapbench "$HERE/tapbench" | sed 's/^/managed plain /'
    taskset -c 0 dotnet "$BENCH" bulk-tap --n 166 --seconds "$S" --offload --tapbench "$HERE/tapbench" | sed 's/^/managed vnet /'
  } | sed "s/^/run$r /" | tee -a "$LOG"
done
# Lines look like: run1 ceiling kernel->tap plain goodput_gbps=3.4 ... / run1 managed plain kernel->managed goodput_gbps=...
awk '
  { side = $2 == "ceiling" ? "ceiling" : "managed"
    mode = $2 == "ceiling" ? $4 : $3
    dir = ($0 ~ /kernel->(tap|managed)/) ? "kernel->tap" : "tap->kernel"
    match($0, /goodput_gbps=[0-9.]+/); v = substr($0, RSTART + 13, RLENGTH - 13)
    key = side " " mode " " dir; n[key]++; val[key, n[key]] = v }
  function median(key,   i, j, t, m, a) {
    m = n[key]; for (i = 1; i <= m; i++) a[i] = val[key, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    print "== medians (Gbit/s)"
    split("plain vnet", modes, " "); split("kernel->tap tap->kernel", dirs, " ")
    for (i = 1; i <= 2; i++) for (j = 1; j <= 2; j++) {
      c = median("ceiling " modes[i] " " dirs[j]); m = median("managed " modes[i] " " dirs[j])
      printf "%-5s %-11s ceiling %7.2f  managed %7.2f  ratio %.2f\n", modes[i], dirs[j], c, m, (c > 0 ? m / c : 0) }
  }' "$LOG"
