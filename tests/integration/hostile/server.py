#!/usr/bin/env python3
"""A hostile OpenAI-compatible server for tests/integration/hostile_test.sh: it sends the
raw bytes the mock server never would (it always writes well-formed UTF-8 JSON). Loopback
only; prints its port on stdout, then serves until killed. What it sends depends on a
keyword in the request body:

  RAWUTF8      200, a chat.completion whose content holds bytes that are not UTF-8
  DEEPBODY     200, a response body nested 100,000 arrays deep
  ENDLESS      200, a body with no Content-Length that never ends (closed after 64 MiB)
  ENDLESSSSE   200, an event stream of small deltas that never ends (closed after 64 MiB)
  HUGEERROR    500 with a 40 MiB error body
  HEADERFLOOD  200 with 20,000 response headers
"""
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIMIT = 64 << 20  # the most any endless answer sends before giving up


def completion(content: bytes) -> bytes:
    head = json.dumps({"id": "x", "object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "@@"}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
    return head.replace(b"@@", content)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def endless(self, chunk: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        try:
            while sent < LIMIT:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_GET(self):
        self.send_body(404, b'{"error":{"message":"not here"}}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if b"RAWUTF8" in body:
            self.send_body(200, completion(b"raw \xff\xfe bytes, a cut \xe2\x82 sequence"))
        elif b"DEEPBODY" in body:
            self.send_body(200, b"[" * 100000 + b"]" * 100000)
        elif b"ENDLESSSSE" in body:
            event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 1000 + b'"}}]}\n\n'
            self.endless(event, "text/event-stream")
        elif b"ENDLESS" in body:
            self.endless(b"x" * 65536, "application/json")
        elif b"HUGEERROR" in body:
            self.send_body(500, b'{"error":{"message":"' + b"e" * (40 << 20) + b'"}}')
        elif b"HEADERFLOOD" in body:
            self.send_response(200)
            for i in range(20000):
                self.send_header("X-Flood-%d" % i, "y" * 40)
            out = completion(b"flooded")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        else:
            self.send_body(200, completion(b"ok"))


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
