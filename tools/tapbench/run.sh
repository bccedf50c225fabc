#!/bin/sh
# The TAP ceiling: tapbench on a TAP in a fresh namespace (subnet 10.77.N.0/24), against a
# kernel socket application in the namespace. Needs root.
#   tools/tapbench/run.sh [N] [SECONDS] [MODES]   (MODES "plain vnet" by default; prints one
#   line per direction and mode)
# Pinning: the TAP program on CPU 0, the kernel-side application on CPU 1.
set -eu
N=${1:-160}; SECONDS_=${2:-5}; MODES=${3:-plain vnet}
HERE=$(cd "$(dirname "$0")" && pwd)
make -s -C "$HERE" tapbench
NS=tapbench-$$
OUT=$(mktemp -d)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE
ip netns add "$NS"
ip -n "$NS" link set lo up
configure() {   # waits for the device the TAP program creates, then addresses it
  for _ in $(seq 100); do ip -n "$NS" link show tb0 >/dev/null 2>&1 && break; sleep 0.05; done
  ip -n "$NS" addr add 10.77.$N.1/24 dev tb0
  ip -n "$NS" link set tb0 up
}
for mode in $MODES; do
  arg=""; [ $mode = vnet ] && arg=vnet
  # kernel -> TAP program
  ip netns exec "$NS" taskset -c 0 "$HERE/tapbench" tap-sink tb0 10.77.$N.2 "$SECONDS_" $arg > "$OUT/sink" &
  sink=$!; PIDS="$sink"
  configure
  ip netns exec "$NS" taskset -c 1 "$HERE/tapbench" sock-send 10.77.$N.2 5001 "$SECONDS_" >/dev/null
  wait $sink
  echo "kernel->tap $mode $(cat "$OUT/sink")"
  sleep 0.3
  # TAP program -> kernel
  ip netns exec "$NS" taskset -c 1 "$HERE/tapbench" sock-sink 5001 > "$OUT/ksink" &
  ksink=$!
  ip netns exec "$NS" taskset -c 0 "$HERE/tapbench" tap-send tb0 10.77.$N.2 10.77.$N.1 "$SECONDS_" $arg > "$OUT/send" &
  send=$!; PIDS="$ksink $send"
  configure
  wait $send; wait $ksink || true
  PIDS=""
  echo "tap->kernel $mode $(cat "$OUT/send")"
  sleep 0.3
done
