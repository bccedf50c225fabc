#!/usr/bin/env bash
# Captures Linux's own TCP in two scratch network namespaces joined by a veth pair, with
# iptables dropping chosen segments, to give the TCP analysis tests real kernel traffic:
#   sudo tools/analysis-captures/capture.sh [OUTPUT_DIR]
# writes linux-*.pcap (tcpdump on the client's side) into OUTPUT_DIR, by default the test data
# folder tests/TcpLab.Lab.Tests/Trace/Captures. Run once; the pcaps are committed. Needs root,
# iproute2, iptables, ethtool, tcpdump and python3. The namespaces are deleted however it ends.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../tests/TcpLab.Lab.Tests/Trace/Captures}
client=tcplab-dump-client server=tcplab-dump-server
client_if=tcplab-dump-c server_if=tcplab-dump-s
client_ip=10.77.240.1 server_ip=10.77.240.2
tcpdump_pid=

cleanup() {
    if [ -n "$tcpdump_pid" ]; then kill "$tcpdump_pid" 2>/dev/null || true; fi
    ip netns del "$client" 2>/dev/null || true
    ip netns del "$server" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # exit, so that the EXIT trap cleans up

# side NAMESPACE INTERFACE ADDRESS: one end of the veth pair, IPv4 only.
side() {
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$3/24" dev "$2"
    # One frame per segment on the wire, as a NIC without offloads sends them.
    ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null
    ip -n "$1" link set "$2" up
}

setup() {
    cleanup
    ip netns add "$client"
    ip netns add "$server"
    ip link add "$client_if" netns "$client" type veth peer name "$server_if" netns "$server"
    side "$client" "$client_if" "$client_ip"
    side "$server" "$server_if" "$server_ip"
}

# capture NAME CLIENT_ARGS SERVER_ARGS [SIDE IPTABLES_RULE...]: one connection, captured on the
# client's interface. A rule dropping segments the client sends must sit on the server's INPUT:
# one on the client's OUTPUT fails the send, and TCP simply sends again.
capture() {
    local name=$1 client_args=$2 server_args=$3
    shift 3
    setup
    local rule words
    for rule in "$@"; do
        read -r -a words <<< "$rule"   # the side, then iptables' arguments
        ip netns exec "$([ "${words[0]}" = server ] && echo "$server" || echo "$client")" iptables "${words[@]:1}"
    done
    # ip netns exec becomes tcpdump, so $! is tcpdump's own pid; -Z root keeps the file ours.
    ip netns exec "$client" tcpdump -Z root -i "$client_if" -U -w "$out/$name.pcap" tcp port 5001 2>/dev/null &
    tcpdump_pid=$!
    sleep 1   # tcpdump attaches
    # shellcheck disable=SC2086
    timeout 30 ip netns exec "$server" python3 "$here/traffic.py" server "$server_ip" $server_args &
    local server_pid=$!
    sleep 0.5   # the server listens
    # shellcheck disable=SC2086
    timeout 30 ip netns exec "$client" python3 "$here/traffic.py" client "$server_ip" $client_args
    wait "$server_pid"
    sleep 0.5   # the last segments reach tcpdump
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || true
    tcpdump_pid=
    echo "$name: $(tcpdump -r "$out/$name.pcap" 2>/dev/null | wc -l) frames"
}

mkdir -p "$out"
data_to_server="-p tcp --dport 5001 -m length --length 1000:65535"
# The 10th data segment of a burst is lost on the way: duplicate ACKs with SACK, a fast retransmission.
capture linux-loss "--bytes 60000" "" \
    "server -A INPUT $data_to_server -m statistic --mode nth --every 1000 --packet 9 -j DROP"
# The server's ACK of the only data is lost after the capture: the data goes again although it had arrived.
capture linux-lost-ack "--bytes 1000 --idle 1" "" \
    "client -A INPUT -p tcp --sport 5001 --tcp-flags SYN,ACK ACK -m length --length 0:100 -m statistic --mode nth --every 1000 --packet 0 -j DROP"
# A receiver with a small buffer that waits before reading: window full, zero window, probes, window update.
capture linux-zero-window "--bytes 60000" "--receive-buffer 4096 --stall 2"
# Keep-alives after a second of idleness, and their ACKs.
capture linux-keepalive "--bytes 100 --keepalive --idle 3.5" ""
