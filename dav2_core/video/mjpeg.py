"""A local MJPEG stream of the live depth: ``http://127.0.0.1:PORT/`` (a page), ``/stream.mjpg``, ``/frame.jpg``.

Any browser shows ``multipart/x-mixed-replace`` JPEG streams natively (an ``<img>`` pointing at it). The
server only ever binds to the loopback address: live depth of someone's camera is not published to the
network. Each client gets the newest frame when it is ready for one (a slow client skips frames instead
of building a queue), from a thread of its own; :meth:`MjpegServer.close` ends every stream.
"""

from __future__ import annotations

import errno
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
BOUNDARY = "dav2depthframe"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>dav2 live depth</title>
<style>body{margin:0;background:#111;display:flex;justify-content:center;align-items:center;height:100vh}
img{max-width:100%;max-height:100vh}</style></head><body><img src="/stream.mjpg" alt="live depth"></body></html>
"""


class PortInUseError(OSError):
    """The MJPEG port is taken by another program."""


class MjpegServer:
    """Serves the latest published JPEG on 127.0.0.1:``port`` (0 = any free port; :attr:`port` says which)."""

    def __init__(self, port: int) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number 0..65535 (0 = any free port), got {port!r}")
        self._frame: bytes | None = None
        self._number = 0
        self._closed = False
        self._cond = threading.Condition()
        self.clients = 0
        handler = _handler_for(self)
        try:
            self._httpd = ThreadingHTTPServer((HOST, port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno,
                    f"port {port} on {HOST} is already in use by another program; choose another --port "
                    "(or --port 0 for any free one)",
                ) from None
            raise
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="dav2-mjpeg", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def publish(self, jpeg: bytes) -> None:
        """Make ``jpeg`` the current frame and wake the waiting clients."""
        with self._cond:
            self._frame = jpeg
            self._number += 1
            self._cond.notify_all()

    def next_frame(self, after: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """(number, jpeg) of the first frame newer than ``after`` (waits up to ``timeout`` s; None when none
        came or the server closed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._number > after, timeout)
            if self._closed or self._number <= after:
                return after, None
            return self._number, self._frame

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop serving and end every open stream."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            return  # no per-request lines on the live status output

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/frame.jpg":
                number, jpeg = server.next_frame(0, timeout=5.0)
                if jpeg is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no depth frame yet\n", "text/plain")
                else:
                    self._send(HTTPStatus.OK, jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found: try / or /stream.mjpg\n", "text/plain")

        def _stream(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            server.clients += 1
            number = 0
            try:
                while not server.closed:
                    number, jpeg = server.next_frame(number)
                    if jpeg is None:
                        continue
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away
            finally:
                server.clients -= 1

    return Handler
