"""A local HTTP server on 127.0.0.1 (in a thread) for download tests: serves byte strings,
counts requests, can fail the first requests with an HTTP status."""

import contextlib
import http.server
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.requests.append((self.path, dict(self.headers)))
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_error(503, "try again")
            return
        if self.path not in server.files:
            self.send_error(404, "not found")
            return
        body = server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(files, fail_first=0):
    """Serve ``{"/path": bytes}``; yields the server (``.url``, ``.requests``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = dict(files)
    server.requests = []
    server.fail_first = fail_first
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
