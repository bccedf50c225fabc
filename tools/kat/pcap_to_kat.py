#!/usr/bin/env python3
"""Turns one tcpdump capture into a known-answer test data file for tests/TcpLab.Stack.Tests/Wire.

  pcap_to_kat.py SCENARIO.pcap OUT.txt TITLE [--sack-only]

Each frame becomes:
  # frame N: what it is
  # tcpdump: the `tcpdump -nn -vv -e -t -S` text of that frame, one line per text line
  hex of the whole Ethernet frame
--sack-only keeps the handshake, the first full-sized data segment, up to 6 segments for each
number of SACK blocks and the close, so a bulk transfer stays a small file.
"""
import platform
import struct
import subprocess
import sys

CLIENT = bytes([10, 77, 250, 1])


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit(f"{path}: not a little-endian pcap file")
    linktype = struct.unpack("<I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"{path}: link type {linktype}, expected Ethernet")
    frames, offset = [], 24
    while offset < len(data):
        _, _, caplen, wirelen = struct.unpack("<IIII", data[offset:offset + 16])
        if caplen != wirelen:
            sys.exit(f"{path}: frame truncated by the snap length")
        frames.append(data[offset + 16:offset + 16 + caplen])
        offset += 16 + caplen
    return frames


def tcpdump_text(path):
    out = subprocess.run(["tcpdump", "-r", path, "-nn", "-vv", "-e", "-t", "-S"],
                         check=True, capture_output=True, text=True).stdout
    packets = []
    for line in out.splitlines():
        if line and not line[0].isspace():
            packets.append([])
        packets[-1].append(line.rstrip())
    return packets


def tcp_options(tcp):
    """(kind, value) pairs of a TCP header's options, stopping at EOL or a bad length."""
    opts, i, end = [], 20, (tcp[12] >> 4) * 4
    while i < end:
        kind = tcp[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        size = tcp[i + 1]
        opts.append((kind, tcp[i + 2:i + size]))
        i += size
    return opts


FLAG_NAMES = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"),
              (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]


def describe(frame):
    ethertype = struct.unpack(">H", frame[12:14])[0]
    if ethertype == 0x0806:
        return "ARP " + {1: "request", 2: "reply"}.get(struct.unpack(">H", frame[20:22])[0], "?")
    ip = frame[14:]
    ihl, total, proto = (ip[0] & 15) * 4, struct.unpack(">H", ip[2:4])[0], ip[9]
    side = "client" if ip[12:16] == CLIENT else "server"
    body = ip[ihl:total]
    if proto == 1:
        names = {0: "echo reply", 8: "echo request", 3: "destination unreachable", 11: "time exceeded"}
        text = f"{side} ICMP {names.get(body[0], body[0])} code {body[1]}"
        if body[0] == 3:
            text += ", quoting the offending datagram"
        return text
    if proto == 17:
        return f"{side} UDP datagram, {total - ihl - 8} bytes payload"
    if proto != 6:
        return f"{side} IP protocol {proto}"
    flags = "-".join(name for bit, name in FLAG_NAMES if body[13] & bit) or "no flags"
    text = f"{side} {flags}"
    payload = len(body) - (body[12] >> 4) * 4
    if payload:
        text += f", {payload} bytes payload"
    for kind, value in tcp_options(body):
        if kind == 5:
            text += f", SACK {len(value) // 8} block{'s' if len(value) > 8 else ''}"
        elif kind == 34:
            text += ", TFO cookie request" if not value else f", TFO cookie ({len(value)} bytes)"
    if ip[1] & 3:
        text += f", ECN codepoint {ip[1] & 3}"
    return text


def has_sack(frame):
    if struct.unpack(">H", frame[12:14])[0] != 0x0800 or frame[14 + 9] != 6:
        return False
    ip = frame[14:]
    return any(kind == 5 for kind, _ in tcp_options(ip[(ip[0] & 15) * 4:]))


def keep_for_sack(frames):
    """Handshake, first full-sized data segment, close, and up to 6 SACK ACKs of each block count."""
    keep, per_count, seen_full = [], {}, False
    for i, frame in enumerate(frames):
        if struct.unpack(">H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        tcp = ip[(ip[0] & 15) * 4:]
        payload = len(tcp) - (tcp[12] >> 4) * 4
        sack = [value for kind, value in tcp_options(tcp) if kind == 5]
        if tcp[13] & 0x07:  # SYN, FIN, RST
            keep.append(i)
        elif payload >= 1400 and not seen_full:
            keep.append(i)
            seen_full = True
        elif sack and per_count.get(len(sack[0]) // 8, 0) < 6:
            per_count[len(sack[0]) // 8] = per_count.get(len(sack[0]) // 8, 0) + 1
            keep.append(i)
    return keep


def main(argv):
    pcap, out, title = argv[1], argv[2], argv[3]
    frames, texts = read_pcap(pcap), tcpdump_text(pcap)
    if len(frames) != len(texts):
        sys.exit(f"{pcap}: {len(frames)} frames but {len(texts)} tcpdump packets")
    indices = keep_for_sack(frames) if "--sack-only" in argv else range(len(frames))
    with open(out, "w") as f:
        f.write(f"# {title}\n")
        f.write(f"# Captured from Linux {platform.release()} by tools/kat/capture-linux-frames.sh "
                "(two namespaces, veth, checksum offload off); do not edit by hand.\n")
        for n, i in enumerate(indices, 1):
            f.write(f"\n# frame {n}: {describe(frames[i])}\n")
            for line in texts[i]:
                f.write(f"# tcpdump: {line}\n")
            f.write(frames[i].hex() + "\n")


if __name__ == "__main__":
    main(sys.argv)
