#!/usr/bin/env bash
# Captures known-answer frames from the running Linux kernel for the wire-layer tests
# (tests/TcpLab.Stack.Tests/Wire/Data/linux-<version>-*.txt). Run by hand, as root, once per
# kernel you want to compare against; the test run only reads the files this writes.
#
#   sudo tools/kat/capture-linux-frames.sh [OUTPUT_DIR]
#
# Two namespaces joined by a veth pair:
#   tcplab-kat-a  tcplab-kat-a0  02:00:00:00:fa:01  10.77.250.1/24   (client, tcpdump runs here)
#   tcplab-kat-b  tcplab-kat-b0  02:00:00:00:fa:02  10.77.250.2/24   (server)
# Checksum offload, TSO/GSO and GRO are switched off on both ends, so every captured frame
# carries the checksum the kernel computed in software (tcpdump -vv says "correct") and
# segments are on-the-wire sized. Both namespaces are deleted on exit, even on failure.
#
# Needs: iproute2, tcpdump, ethtool, nftables (nft), iputils-ping, python3.
# Loss for the SACK captures comes from an nftables rule (every 5th data segment dropped on
# the server's input, i.e. 20% loss) because this kernel has no sch_netem; tc netem loss 20%
# would do the same where it exists.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/tests/TcpLab.Stack.Tests/Wire/Data}
version=$(uname -r | cut -d. -f1,2)
prefix="linux-$version"
A=tcplab-kat-a
B=tcplab-kat-b
work=$(mktemp -d)
server_pid=""

for tool in ip tcpdump ethtool nft ping python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, tcpdump)" >&2; exit 1; }

cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    [ -n "${KEEP_PCAP:-}" ] && echo "pcaps kept in $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

ina() { ip netns exec "$A" "$@"; }
inb() { ip netns exec "$B" "$@"; }

ip netns add "$A"
ip netns add "$B"
ip link add tcplab-kat-a0 netns "$A" address 02:00:00:00:fa:01 type veth \
    peer name tcplab-kat-b0 netns "$B" address 02:00:00:00:fa:02
for ns in "$A" "$B"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    # 3 = Fast Open as client and as server; 2 = answer ECN only when asked (the default).
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_fastopen=3 net.ipv4.tcp_ecn=2
    ip netns exec "$ns" ip link set lo up
done
ina ip addr add 10.77.250.1/24 dev tcplab-kat-a0
inb ip addr add 10.77.250.2/24 dev tcplab-kat-b0
ina ethtool -K tcplab-kat-a0 tx off tso off gso off gro off >/dev/null
inb ethtool -K tcplab-kat-b0 tx off tso off gso off gro off >/dev/null
ina ip link set tcplab-kat-a0 up
inb ip link set tcplab-kat-b0 up

ip netns exec "$B" python3 "$here/kat_peer.py" serve &
server_pid=$!
for _ in $(seq 50); do
    inb ss -Hltn 'sport = :5003' | grep -q 5003 && break
    sleep 0.1
done

# capture NAME TITLE [--sack-only] -- COMMAND...: runs COMMAND in namespace A under tcpdump.
capture() {
    local name=$1 title=$2 mode=$3
    shift 4
    local pcap="$work/$name.pcap"
    # Not through ina(): $! must be tcpdump itself (ip netns exec execs it) for the SIGINT.
    # -Z root: tcpdump would otherwise drop to its own user and fail to write into $work.
    ip netns exec "$A" tcpdump -i tcplab-kat-a0 --immediate-mode -Z root -U -s 0 -w "$pcap" 'not ip6' 2>"$work/$name.log" &
    local dump_pid=$!
    for _ in $(seq 50); do grep -qs listening "$work/$name.log" && break; sleep 0.1; done
    "$@"
    sleep 0.5 # let the last ACKs and FINs reach the capture
    kill -INT "$dump_pid"
    wait "$dump_pid" || true
    python3 "$here/pcap_to_kat.py" "$pcap" "$out/$prefix-$name.txt" "$title" $mode
    echo "$out/$prefix-$name.txt: $(grep -c '^# frame' "$out/$prefix-$name.txt") frames"
}

peer() { ina python3 "$here/kat_peer.py" "$@"; }

mkdir -p "$out"
capture arp-icmp "ARP resolution and ping -c1 10.77.250.2 from 10.77.250.1, then a UDP datagram to closed port 5999 (ICMP port unreachable)" "" -- \
    sh -c "ip netns exec $A ping -c1 -W2 10.77.250.2 >/dev/null && ip netns exec $A python3 $here/kat_peer.py udp 5999 40700"
capture tcp-hello "TCP connect 10.77.250.1:40100 -> 10.77.250.2:5000, send \"helloworld\", close (python3 sockets)" "" -- \
    peer hello 5000 40100
capture tcp-rst "TCP connect 10.77.250.1:40200 -> 10.77.250.2:5999, a closed port (RST)" "" -- \
    peer closed 5999 40200
capture tcp-fastopen "TCP Fast Open (tcp_fastopen=3): 40300 asks for a cookie, 40301 sends it with \"helloworld\" in the SYN" "" -- \
    sh -c "ip netns exec $A python3 $here/kat_peer.py fastopen 5002 40300 && ip netns exec $A python3 $here/kat_peer.py fastopen 5002 40301"
capture tcp-ecn "TCP connect 10.77.250.1:40600 -> 10.77.250.2:5000 with ECN requested (client tcp_ecn=1), \"helloworld\", close" "" -- \
    sh -c "ip netns exec $A sysctl -qw net.ipv4.tcp_ecn=1 && ip netns exec $A python3 $here/kat_peer.py hello 5000 40600 && ip netns exec $A sysctl -qw net.ipv4.tcp_ecn=2"

# 20% loss of the data segments on the server's input: the server's ACKs carry SACK blocks.
inb nft -f - <<'NFT'
table inet tcplab_kat {
    chain input {
        type filter hook input priority 0;
        tcp dport 5003 ip length > 1000 numgen inc mod 5 0 drop
    }
}
NFT
capture tcp-sack "1000000 bytes 10.77.250.1:40400 -> 10.77.250.2:5003 with every 5th data segment dropped (SACK with timestamps: at most 3 blocks); handshake, first data segment, up to 6 ACKs per SACK block count, close" --sack-only -- \
    peer bulk 5003 40400 1000000
# Without timestamps the 40 option bytes hold 4 SACK blocks.
inb sysctl -qw net.ipv4.tcp_timestamps=0
capture tcp-sack-nots "1000000 bytes 10.77.250.1:40500 -> 10.77.250.2:5003, every 5th data segment dropped, server tcp_timestamps=0 (SACK without timestamps: up to 4 blocks); handshake, first data segment, up to 6 ACKs per SACK block count, close" --sack-only -- \
    peer bulk 5003 40500 1000000

echo "done; the namespaces are deleted on exit"
