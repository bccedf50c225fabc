#!/usr/bin/env python3
"""Traffic for tools/kat/capture-linux-frames.sh: run inside the KAT namespaces only.

  kat_peer.py serve                    listen on 5000 (sink), 5002 (Fast Open sink), 5003 (bulk sink)
  kat_peer.py hello PORT SPORT         connect, send "helloworld", close
  kat_peer.py closed PORT SPORT        connect to a closed port (expects RST)
  kat_peer.py fastopen PORT SPORT      sendto(MSG_FASTOPEN) "helloworld", close
  kat_peer.py bulk PORT SPORT BYTES    send BYTES, close
  kat_peer.py udp PORT SPORT           one UDP datagram to a closed port (expects ICMP port unreachable)
"""
import socket
import sys
import threading

SERVER = "10.77.250.2"


def sink(conn):
    with conn:
        while conn.recv(65536):
            pass


def listen(port, fastopen=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fastopen:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
    s.bind((SERVER, port))
    s.listen(16)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=sink, args=(conn,), daemon=True).start()


def client(sport):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("10.77.250.1", sport))
    return c


def drain_and_close(c):
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):  # wait for the server's FIN so the capture holds the whole close
        pass
    c.close()


def main(argv):
    cmd = argv[1]
    if cmd == "serve":
        for port, tfo in ((5000, False), (5002, True), (5003, False)):
            threading.Thread(target=listen, args=(port, tfo), daemon=True).start()
        threading.Event().wait()
    port, sport = int(argv[2]), int(argv[3])
    if cmd == "hello":
        c = client(sport)
        c.connect((SERVER, port))
        c.sendall(b"helloworld")
        drain_and_close(c)
    elif cmd == "closed":
        c = client(sport)
        try:
            c.connect((SERVER, port))
            sys.exit("connect to a closed port succeeded")
        except ConnectionRefusedError:
            pass
    elif cmd == "fastopen":
        c = client(sport)
        c.sendto(b"helloworld", socket.MSG_FASTOPEN, (SERVER, port))
        drain_and_close(c)
    elif cmd == "bulk":
        c = client(sport)
        c.connect((SERVER, port))
        c.sendall(bytes(i % 251 for i in range(int(argv[4]))))
        drain_and_close(c)
    elif cmd == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("10.77.250.1", sport))
        u.sendto(b"helloworld", (SERVER, port))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
