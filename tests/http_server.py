"""A local HTTP server for download tests: serves bytes by path, honours Range requests, and can drop
connections part-way (as a flaky mirror would). No hub, no internet: 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    files: dict[str, bytes]
    honour_range: bool = True
    drop_after: int | None = None  # bytes sent before the connection is cut ...
    drops: int = 0  # ... for this many requests
    drop_path: str | None = None  # only requests for this path are cut (None: any)
    requests: list[dict] = field(default_factory=list)


def _handler(served: Served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            served.requests.append({"path": self.path, "range": self.headers.get("Range")})
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and served.honour_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = served.drop_path is None or served.drop_path == self.path
            if cut and served.drops > 0 and served.drop_after is not None:
                served.drops -= 1
                self.wfile.write(body[: served.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(served: Served, port: int = 0):
    """Yields the base URL (http://127.0.0.1:PORT) while the server runs in a thread (port 0: any free one)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
