"""JSON over HTTP for served models: bounded concurrency, a deadline per request, retries with back-off.

httpx sends (async, one connection pool per batch of requests, HTTP/1.1 keep-alive); tenacity decides
when to try again and how long to wait. What is retried: timeouts, refused or dropped connections,
408, 429 and 5xx answers. The wait before retry *n* is ``backoff * 2**(n-1)`` plus up to ``backoff`` of
random jitter, at most ``max_backoff``; a ``Retry-After`` header is honoured (the wait is never
shorter than what the server asked for). A request that still fails after ``max_retries`` retries, or
whose server asks to wait longer than ``max_backoff``, stops the run with :class:`BackendUnavailable`:
the answers already received are in the answer cache, and rerunning the command resumes.

Other 4xx answers are not retried. 401, 403 and 404 mean no request can succeed (wrong key, wrong URL
or model name), so they stop the run too; the rest (400, 413, 422: this one request is too long or
malformed) fail only the request that got them, which becomes a per-sample error.

The API key travels in the ``Authorization`` header and nowhere else: it is never part of an error
message (any text a server sends back is scrubbed of it), a log line or a cache key.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from evalsuite.config import ApiSettings
from evalsuite.errors import BackendError, BackendUnavailable

RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FATAL_STATUS = {401: "the server refused the API key", 403: "the server refused access", 404: "not found"}
RECENT = 4096  # answers remembered, so a chunk retried request by request is not sent twice
SHOWN_BODY = 300  # characters of a server's error answer quoted in messages


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the wait the server asked for, in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Client:
    """Posts JSON bodies to one server, many at a time; see the module docstring for the policy."""

    def __init__(self, api: ApiSettings, key: str | None) -> None:
        self.api = api
        self.base_url = api.base_url.rstrip("/")
        self._key = key
        self.retries = 0  # tries repeated after a transient failure
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._wait = wait_exponential_jitter(initial=api.backoff, max=api.max_backoff, jitter=api.backoff)

    def post_all(self, path: str, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any] | BackendError]:
        """Each body's JSON answer, or the BackendError that failed only that request, in order.
        Raises BackendUnavailable when the server cannot be used at all (after the retry budget).

        The latest answers are remembered (``RECENT`` of them): when one request of a chunk fails, the
        engine asks again one request at a time, and the others are then not sent a second time."""
        keys = [json.dumps([path, body], sort_keys=True) for body in bodies]
        found: dict[str, dict[str, Any] | BackendError] = {
            k: self._recent[k] for k in keys if k in self._recent
        }
        todo = {key: body for key, body in zip(keys, bodies, strict=True) if key not in found}
        if todo:
            answers = asyncio.run(self._post_all(path, list(todo.values())))
            found.update(zip(todo, answers, strict=True))
            for key, answer in zip(todo, answers, strict=True):
                if not isinstance(answer, BackendError):
                    self._recent[key] = answer
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return [found[key] for key in keys]

    async def _post_all(
        self, path: str, bodies: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any] | BackendError]:
        limits = httpx.Limits(
            max_connections=self.api.concurrency, max_keepalive_connections=self.api.concurrency
        )
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        slots = asyncio.Semaphore(self.api.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, limits=limits, timeout=self.api.timeout
        ) as client:
            tasks = [asyncio.create_task(self._post(client, slots, path, body)) for body in bodies]
            try:
                return await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _post(
        self, client: httpx.AsyncClient, slots: asyncio.Semaphore, path: str, body: dict[str, Any]
    ) -> dict[str, Any] | BackendError:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.api.max_retries + 1),
            wait=self._wait_for,
            retry=retry_if_exception(self._worth_retrying),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with slots:
                        return await self._once(client, path, body)
        except Transient as failure:
            tries = attempt.retry_state.attempt_number
            if failure.retry_after is not None and failure.retry_after > self.api.max_backoff:
                why = f"asked to wait {failure.retry_after:g} s (Retry-After), more than api.max_backoff"
            else:
                why = f"{failure} ({tries} tr{'y' if tries == 1 else 'ies'})"
            raise BackendUnavailable(
                f"{self.base_url}{path}: {why}; the answers received so far are in the answer cache: "
                "rerun the same command to resume"
            ) from None
        except BackendError as error:
            return error
        raise AssertionError("unreachable: tenacity either returns, retries or reraises")

    async def _once(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await asyncio.wait_for(client.post(path, json=body), self.api.timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise Transient(f"no answer within {self.api.timeout:g} s (api.timeout)") from None
        except httpx.TransportError as error:  # refused, reset or dropped connections
            raise Transient(
                f"connection failed: {self._scrub(type(error).__name__ + ': ' + str(error))}"
            ) from None
        status = response.status_code
        if status in RETRIED_STATUS:
            raise Transient(f"HTTP {status}: {self._excerpt(response)}", retry_after(response))
        if status in FATAL_STATUS:
            raise BackendUnavailable(
                f"{self.base_url}{path}: HTTP {status}, {FATAL_STATUS[status]}: {self._excerpt(response)}"
            )
        if status >= 400:
            raise BackendError(f"the server rejected the request: HTTP {status}: {self._excerpt(response)}")
        try:
            answer = response.json()
        except json.JSONDecodeError:
            raise BackendError(f"the server's answer is not JSON: {self._excerpt(response)}") from None
        if not isinstance(answer, dict):
            raise BackendError(f"the server's answer is not a JSON object: {self._excerpt(response)}")
        return answer

    def _worth_retrying(self, error: BaseException) -> bool:
        if not isinstance(error, Transient):
            return False
        return error.retry_after is None or error.retry_after <= self.api.max_backoff

    def _wait_for(self, state: RetryCallState) -> float:
        """Exponential back-off with jitter, and never less than the server's Retry-After."""
        wait = float(self._wait(state))
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, Transient) and failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        return wait

    def _count_retry(self, state: RetryCallState) -> None:
        self.retries += 1

    def _excerpt(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())
        return self._scrub(text[:SHOWN_BODY] + ("…" if len(text) > SHOWN_BODY else "")) or "(empty answer)"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[API key]") if self._key else text


def retry_after(response: httpx.Response) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (a number or an HTTP date), else None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
