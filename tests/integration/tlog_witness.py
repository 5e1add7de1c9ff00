"""A real C2SP tlog-witness for tests: an HTTP server in a thread that answers `POST /add-checkpoint` as the
spec (c2sp.org/tlog-witness) says, checks the checkpoint's signature and the consistency proof with the Python
client's verifier (registry_guard_client: written apart from the service's ledger/), and cosigns with its own
Ed25519 key in the C2SP tlog-cosignature format, written here from the spec, not with the service's code."""

import base64
import hashlib
import http.server
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from registry_guard_client import ProofError, open_checkpoint
from registry_guard_client import verify_consistency as client_verify_consistency


@dataclass
class WitnessState:
    """What the witness holds for the one log it knows (`log_key`: the log's vkey) and what it was sent."""

    log_key: str
    name: str = "witness.test/w1"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    size: int = 0
    root: bytes = b""
    requests: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def vkey(self) -> str:
        public = self.key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.name.encode() + b"\n\x04" + public).digest()[:4]
        encoded = base64.b64encode(b"\x04" + public).decode()
        return f"{self.name}+{key_id.hex()}+{encoded}"

    def cosign(self, body: str) -> str:
        timestamp = int(time.time())
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        public = self.key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.name.encode() + b"\n\x04" + public).digest()[:4]
        signature = key_id + struct.pack(">Q", timestamp) + self.key.sign(message)
        return f"\u2014 {self.name} {base64.b64encode(signature).decode()}\n"

    def add_checkpoint(self, request: str) -> tuple[int, str, str]:
        """(status, content type, body) for an add-checkpoint request body."""
        head, separator, note = request.partition("\n\n")
        lines = head.split("\n")
        if not separator or not lines[0].startswith("old ") or not lines[0][4:].isdigit():
            return 400, "text/plain", "malformed\n"
        old = int(lines[0][4:])
        try:
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        except ValueError:
            return 400, "text/plain", "malformed proof\n"
        origin = note.split("\n", 1)[0]
        if origin != self.log_key.split("+", 1)[0]:
            return 404, "text/plain", "unknown log\n"
        try:
            checkpoint = open_checkpoint(note, self.log_key)
        except ProofError:
            return 403, "text/plain", "no signature by a known key\n"
        if old > checkpoint.size:
            return 400, "text/plain", "old size past the checkpoint\n"
        with self.lock:  # (the check and the update are one step: the spec's race)
            if old != self.size:
                return 409, "text/x.tlog.size", f"{self.size}\n"
            if old == checkpoint.size:
                if self.size and checkpoint.root_hash != self.root:
                    return 409, "text/x.tlog.size", f"{self.size}\n"
            elif old == 0:
                if proof:
                    return 422, "text/plain", "a proof from size 0 is empty\n"
            elif not client_verify_consistency(old, checkpoint.size, self.root, checkpoint.root_hash, proof):
                return 422, "text/plain", "the consistency proof does not verify\n"
            self.size, self.root = checkpoint.size, checkpoint.root_hash
        body = note.rpartition("\n\n")[0] + "\n"
        return 200, "text/plain; charset=utf-8", self.cosign(body)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: WitnessState

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers["content-length"])).decode()
        if self.path != "/add-checkpoint":
            status, kind, body = 404, "text/plain", "no such endpoint\n"
        else:
            status, kind, body = self.state.add_checkpoint(request)
        with self.state.lock:
            self.state.requests.append(request)
            self.state.answers.append(status)
        encoded = body.encode()
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def running_witness(state: WitnessState) -> Iterator[str]:
    """The witness serving `state` on a free port of 127.0.0.1; yields its submission prefix."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
