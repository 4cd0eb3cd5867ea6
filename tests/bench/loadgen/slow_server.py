#!/usr/bin/env python3
"""A deliberately slow HTTP/1.1 server, for loadgen's selftest.

Every answer takes --delay seconds (one thread per connection, so the
capacity is connections / delay requests per second) and is a 200: by
default keep-alive with a Content-Length; with --chunked, keep-alive with a
chunked body; with --close, "Connection: close" and no length (the body
ends with the connection). With --log FILE it appends one line per request,
the X-Seq header and the body, so the selftest can check what loadgen
substituted. Prints the port it listens on, then serves until killed.

    slow_server.py --delay 0.05 [--chunked | --close] [--log FILE]
"""
import argparse
import http.server
import socket
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, required=True)
    ap.add_argument("--log")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--close", action="store_true")
    args = ap.parse_args()
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1) if args.log else None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # The head and the body go out in two writes: without this,
            # Nagle's algorithm holds the body until the client's delayed
            # ACK, 40 ms later, and the server is slower than it says.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            time.sleep(args.delay)
            if log:
                with lock:
                    log.write("%s %s\n" % (self.headers.get("X-Seq", "-"), body.decode()))
            out = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if args.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (out[:4], out[4:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            elif args.close:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(out)
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 128
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
