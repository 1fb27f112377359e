"""Real traffic inside network namespaces: a server that listens, a client that probes.

Run as `python3 netns_traffic.py serve PORT...` (TCP listeners plus a VRRP receiver)
or `python3 netns_traffic.py probe JSON` (TCP connects, ICMP echo, VRRP sends), each
under `ip netns exec`. It has no imports from the tests, so it runs anywhere.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

VRRP = 112
TIMEOUT = 1.0


def serve(ports: list[int]) -> None:
    """Accept and close TCP connections on ports; print each VRRP payload that arrives."""
    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(64)
        listeners.append(listener)
    vrrp = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP)

    def accept_forever(listener: socket.socket) -> None:
        while True:
            listener.accept()[0].close()

    def receive_vrrp() -> None:
        while True:
            packet, (source, *_port) = vrrp.recvfrom(2048)
            header_length = (packet[0] & 0x0F) * 4
            print(f"vrrp {source} {packet[header_length:].decode(errors='replace')}", flush=True)

    for listener in listeners:
        threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    threading.Thread(target=receive_vrrp, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes stdin


def checksum(data: bytes) -> int:
    """Internet checksum of data (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def tcp(source: str, destination: str, port: int) -> str:
    """Connect from source to destination:port: open, refused or timeout (dropped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.bind((source, 0))
        try:
            client.connect((destination, port))
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        return "open"


def icmp_echo(source: str, destination: str) -> str:
    """Send one ICMP echo request from source: reply or timeout."""
    identifier = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, identifier, 1)
    payload = b"nospof-firewall-test"
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), identifier, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as client:
        client.bind((source, 0))
        client.sendto(packet, (destination, 0))
        deadline = time.monotonic() + TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            client.settimeout(remaining)
            try:
                answer, (sender, *_port) = client.recvfrom(2048)
            except socket.timeout:
                break
            header_length = (answer[0] & 0x0F) * 4
            kind, _code, _checksum, answer_id, _sequence = struct.unpack("!BBHHH", answer[header_length:header_length + 8])
            if sender == destination and kind == 0 and answer_id == identifier:
                return "reply"
    return "timeout"


def vrrp_send(source: str, destination: str, payload: str) -> str:
    """Send one IP protocol 112 packet; whether it arrived, only the server can tell."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP) as client:
        client.bind((source, 0))
        client.sendto(payload.encode(), (destination, 0))
    return "sent"


def probe(probes: list[dict[str, Any]]) -> dict[str, str]:
    """Run every probe at once; return each one's outcome by its id."""
    actions = {
        "tcp": lambda p: tcp(p["src"], p["dst"], p["port"]),
        "icmp": lambda p: icmp_echo(p["src"], p["dst"]),
        "vrrp": lambda p: vrrp_send(p["src"], p["dst"], p["id"]),
    }
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        outcomes = pool.map(lambda p: actions[p["kind"]](p), probes)
    return {p["id"]: outcome for p, outcome in zip(probes, outcomes)}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(port) for port in sys.argv[2:]])
    else:
        print(json.dumps(probe(json.loads(sys.argv[2]))))
