#!/usr/bin/env python3
"""One side of a TCP exchange for capture.sh: a server that may stall before reading, or a
client that sends some bytes, may keep alive, and may idle before it closes."""
import argparse
import socket
import time

PORT = 5001


def serve(address, receive_buffer, stall):
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if receive_buffer:
            # Set before listen so the accepted socket inherits it (and its window scale).
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        listener.bind((address, PORT))
        listener.listen(1)
        listener.settimeout(20)
        connection, _ = listener.accept()
        with connection:
            time.sleep(stall)
            while connection.recv(65536):
                pass


def send(address, size, keepalive, idle):
    with socket.create_connection((address, PORT), timeout=20) as connection:
        if keepalive:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        connection.sendall(bytes(size))
        time.sleep(idle)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("address")
    parser.add_argument("--receive-buffer", type=int, default=0)
    parser.add_argument("--stall", type=float, default=0)
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument("--idle", type=float, default=0)
    args = parser.parse_args()
    if args.role == "server":
        serve(args.address, args.receive_buffer, args.stall)
    else:
        send(args.address, args.bytes, args.keepalive, args.idle)


if __name__ == "__main__":
    main()
