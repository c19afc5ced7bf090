#!/usr/bin/python3
"""systemd's notify socket for a test: binds SOCKET (AF_UNIX datagram) and appends each
notification to LOG as one line (its newlines turned into spaces), until killed.

    notify_socket.py SOCKET LOG &      then run the daemon with NOTIFY_SOCKET=SOCKET
"""
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
