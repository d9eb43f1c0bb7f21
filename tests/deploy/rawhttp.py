"""Raw HTTP/1.1 on a socket, for what httpx will not do: chunked bodies, hang-ups mid-upload."""

from __future__ import annotations

import select
import socket

BOUNDARY = "tsf-boundary"


def part_head(name: str = "file", filename: str = "a.mp4") -> bytes:
    """The header of one multipart file part."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()  # fmt: skip


def part_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(url: str, route: str, length: int | None = None) -> bytes:
    """A POST's request line and headers: Content-Length when given, else chunked."""
    sized = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {route} HTTP/1.1\r\nHost: {url.split('//')[1]}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{sized}\r\n\r\n").encode()  # fmt: skip


def connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def chunked_upload(url: str, route: str, total_mb: int) -> tuple[int, bytes]:
    """Stream `total_mb` MB of zeros as a chunked file part; returns (MB sent, response bytes).

    It stops sending as soon as the server answers or hangs up, as a client would."""
    sock = connect(url)
    sent, response = 0, b""

    def chunk(data: bytes) -> None:
        sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    try:
        sock.sendall(request_head(url, route))
        chunk(part_head())
        for _ in range(total_mb):
            if select.select([sock], [], [], 0)[0]:  # an answer (or a hang-up) came early
                break
            chunk(b"\0" * (1 << 20))
            sent += 1
        else:
            chunk(part_tail())
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection
    try:
        while data := sock.recv(65536):
            response += data
    except OSError:
        pass
    sock.close()
    return sent, response
