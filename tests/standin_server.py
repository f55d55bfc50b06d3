#!/usr/bin/env python3
"""A small HTTP server on 127.0.0.1 that answers like llama-server's /completion, for the
faults a real llama-server cannot be made to show on demand.

Started as ``llama-server`` with llama-server's own arguments (only ``--port`` is read).
A token is a word; /tokenize counts words plus one for the start token. The fault comes
from ``STANDIN_FAULT``:

- ``http500``: every /completion after the warm-ups answers HTTP 500 with a JSON error body;
- ``short``: every answer ends after 4 tokens at an end-of-stream;
- ``short-first-start``: answers end early on the first start only (``STANDIN_STATE``
  names a file that counts the starts), so a retried warm-up on a fresh server succeeds;
- ``short-after-warmup``: the warm-ups are whole, then every other request ends early;
- ``refuse-after-warmup``: after the warm-ups the server stops listening (connections
  are refused) but the process lives on.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FAULT = os.environ.get("STANDIN_FAULT", "")
SHORT_AT = 4


def _first_start() -> bool:
    state = os.environ.get("STANDIN_STATE")
    if not state:
        return True
    path = Path(state)
    starts = int(path.read_text() or "0") if path.exists() else 0
    path.write_text(str(starts + 1))
    return starts == 0


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.completions = 0
        self.first_start = _first_start()
        self.server: ThreadingHTTPServer | None = None


STATE = State()


def _ends_early(index: int, warm: bool) -> bool:
    if FAULT == "short" or (FAULT == "short-first-start" and STATE.first_start):
        return True
    return FAULT == "short-after-warmup" and not warm and index % 2 == 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("standin: " + format % args + "\n")

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": {"code": 404, "message": "File Not Found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/tokenize":
            self._json(200, {"tokens": list(range(len(str(body.get("content", "")).split()) + 1))})
        elif self.path == "/completion":
            self._complete(body)
        else:
            self._json(404, {"error": {"code": 404, "message": "File Not Found"}})

    def _complete(self, body: dict[str, Any]) -> None:
        warm = "id_slot" in body  # the duel's warm-ups name their slot; measured requests do not
        with STATE.lock:
            STATE.completions += 1
            index = STATE.completions
        if FAULT == "http500" and not warm:
            self._json(500, {"error": {"code": 500, "type": "server_error",
                                       "message": "failed to find free space in the KV cache"}})
            return
        asked = int(body.get("n_predict", 16))
        made = SHORT_AT if _ends_early(index, warm) else asked
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        prompt_n = len(str(body.get("prompt", "")).split()) + 1
        for n in range(1, made + 1):
            timings = {"prompt_n": prompt_n, "cache_n": 0, "predicted_n": n}
            piece = {"content": " word", "stop": False, "timings": timings}
            self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.002)
        stop = "eos" if made < asked else "limit"
        final = {"content": "", "stop": True, "stop_type": stop,
                 "timings": {"prompt_n": prompt_n, "cache_n": 0, "predicted_n": made}}
        self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        self.wfile.flush()
        if FAULT == "refuse-after-warmup" and warm and STATE.server is not None:
            STATE.server.socket.close()  # still running, no longer listening


def main(argv: list[str]) -> int:
    port = int(argv[argv.index("--port") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    STATE.server = server
    print(f"standin: listening on 127.0.0.1:{port} (fault: {FAULT or 'none'})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except (OSError, ValueError):  # the listening socket was closed on purpose: live on, refusing
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
