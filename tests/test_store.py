"""The persistent store: answers, model descriptions and digests persist, and several processes share it."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, cast

import pytest

from evalsuite.errors import ConfigError
from evalsuite.store import FILENAME, Store, request_hash

# This module stays light to import (no torch, no lm-eval): the spawned writer processes import it to find
# `_write_answers`. Tests that need the engine import it inside the test.

SAFETY_CAP = 600  # seconds no wait below exceeds: a cap, so that a broken test fails, not an expected time
WRITERS = 4
ANSWERS_PER_WRITER = 200
BATCH = 20


def _value(writer: int, index: int) -> str:
    return json.dumps([-(writer * 1000 + index) / 7, index % 2 == 0])


def _write_answers(folder: str, writer: int, start_together: Barrier) -> None:
    """Runs in its own process: its own Store on the shared folder, one transaction per batch."""
    start_together.wait(timeout=SAFETY_CAP)  # until the slowest writer has started
    store = Store(Path(folder))
    try:
        for start in range(0, ANSWERS_PER_WRITER, BATCH):
            store.put_answers(
                "model",
                [
                    (request_hash(f"{writer}/{i}"), _value(writer, i))
                    for i in range(start, min(start + BATCH, ANSWERS_PER_WRITER))
                ],
            )
    finally:
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "cache")
    yield opened
    opened.close()


def test_answers_round_trip_and_missing_keys_are_absent(store: Store) -> None:
    stored, missing = request_hash("stored"), request_hash("missing")
    store.put_answers("m", [(stored, "[-1.5, true]")])
    assert store.answers("m", [stored, missing]) == {stored: "[-1.5, true]"}
    assert store.answers("m", [missing]) == {}
    assert store.answers("m", []) == {}
    assert store.count("m") == 1


def test_answers_survive_reopening_the_folder(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.put_answers("m", [(request_hash("a"), '"text"')])
    first.close()
    second = Store(tmp_path)
    assert second.answers("m", [request_hash("a")]) == {request_hash("a"): '"text"'}
    second.close()


def test_many_answers_are_read_back_beyond_one_query_batch(store: Store) -> None:
    hashes = [request_hash(str(i)) for i in range(1200)]  # more than one IN (...) list of host parameters
    store.put_answers("m", [(h, str(i)) for i, h in enumerate(hashes)])
    found = store.answers("m", hashes)
    assert len(found) == 1200 and all(found[h] == str(i) for i, h in enumerate(hashes))


def test_floats_and_flags_round_trip_exactly_through_the_engine_json(store: Store) -> None:
    from evalsuite.engine.scheduler import AnswerCache  # imports torch: kept out of the module's imports

    cache = AnswerCache(store, "m")
    answers: list[tuple[str, tuple[float, bool]]] = [
        ("ll-true", (-1.2345678901234567, True)),
        ("ll-false", (-0.1 - 0.2, False)),
        ("ll-tiny", (-5e-324, True)),
    ]
    cache.put(answers)
    found = cache.get([key for key, _ in answers], "loglikelihood")
    assert found == dict(answers)
    for key, (logprob, greedy) in answers:
        assert found[key][0].hex() == logprob.hex()
        assert found[key][1] is greedy
    cache.put([("rolling", -1.2345678901234567), ("generation", "a\nb ü")])
    assert cache.get(["rolling"], "loglikelihood_rolling") == {"rolling": -1.2345678901234567}
    assert cache.get(["generation"], "generate_until") == {"generation": "a\nb ü"}


def test_models_do_not_see_each_other_s_answers(store: Store) -> None:
    key = request_hash("same request")
    store.put_answers("model-a", [(key, "1.0")])
    store.put_answers("model-b", [(key, "2.0")])
    assert store.answers("model-a", [key]) == {key: "1.0"}
    assert store.answers("model-b", [key]) == {key: "2.0"}
    assert store.answers("model-c", [key]) == {}
    assert (store.count("model-a"), store.count("model-b"), store.count("model-c")) == (1, 1, 0)


def test_model_info_round_trips(store: Store) -> None:
    assert store.model_info("id-1") is None
    store.put_model_info("id-1", '{"dtype": "bf16"}')
    store.put_model_info("id-2", '{"dtype": "int8"}')
    assert store.model_info("id-1") == '{"dtype": "bf16"}'
    store.put_model_info("id-1", '{"dtype": "fp32"}')
    assert store.model_info("id-1") == '{"dtype": "fp32"}'
    assert store.model_info("id-2") == '{"dtype": "int8"}'


def test_a_digest_is_forgotten_when_the_file_s_size_or_mtime_changes(store: Store, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    assert store.digest(weights) is None
    store.put_digest(weights, "sha-1")
    assert store.digest(weights) == "sha-1"

    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same size, newer
    assert store.digest(weights) is None
    store.put_digest(weights, "sha-2")
    assert store.digest(weights) == "sha-2"

    stat = weights.stat()
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, other size
    assert store.digest(weights) is None


def test_a_file_that_is_not_sqlite_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"this is not a database\x00\xff" * 100)
    with pytest.raises(ConfigError, match="not usable") as raised:
        Store(tmp_path)
    assert str(tmp_path / FILENAME) in str(raised.value)


def test_a_schema_from_the_future_is_a_config_error(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / FILENAME)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(ConfigError, match="schema 99") as raised:
        Store(tmp_path)
    assert str(tmp_path / FILENAME) in str(raised.value)


def test_answers_are_stored_all_or_nothing_when_the_items_fail(store: Store) -> None:
    def items() -> Iterator[tuple[bytes, str]]:
        yield request_hash("1"), "1"
        yield request_hash("2"), "2"
        raise RuntimeError("the third answer cannot be encoded")

    with pytest.raises(RuntimeError, match="third answer"):
        store.put_answers("m", items())
    assert store.count("m") == 0


def test_answers_are_stored_all_or_nothing_when_sqlite_fails_mid_batch(store: Store) -> None:
    rows = [(request_hash("1"), "1"), (request_hash("2"), "2"), (request_hash("3"), cast(str, None))]
    with pytest.raises(sqlite3.IntegrityError):  # NOT NULL: the third row fails after two were inserted
        store.put_answers("m", rows)
    assert store.count("m") == 0
    store.put_answers("m", rows[:2])  # the failed transaction was rolled back, not left open
    assert store.count("m") == 2


def test_several_processes_write_to_one_store_concurrently(tmp_path: Path) -> None:
    folder = tmp_path / "shared-cache"  # created by whichever writer gets there first
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(WRITERS)
    writers = [
        context.Process(target=_write_answers, args=(str(folder), w, start_together)) for w in range(WRITERS)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=SAFETY_CAP)
    try:
        assert [p.exitcode for p in writers] == [0] * WRITERS
    finally:
        for process in writers:
            if process.is_alive():
                process.kill()
                process.join()

    store = Store(folder)
    keys = {request_hash(f"{w}/{i}"): _value(w, i) for w in range(WRITERS) for i in range(ANSWERS_PER_WRITER)}
    assert store.count("model") == WRITERS * ANSWERS_PER_WRITER == 800
    assert store.answers("model", list(keys)) == keys
    store.close()


def test_opening_waits_for_a_process_that_is_creating_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that opens a new cache file switches it to WAL, which takes the write lock of a file still
    in rollback-journal mode. Another process opening the cache at that moment must wait for that lock
    (busy timeout) like for any other writer, not fail: two runs started together on a new cache folder.
    The lock is held here by a plain connection, and released by another thread once the store has tried
    to switch to WAL, failed on the lock and tried again: the store is seen waiting, whatever the speed."""
    creator = sqlite3.connect(tmp_path / FILENAME, isolation_level=None, check_same_thread=False)
    creator.execute("BEGIN IMMEDIATE")
    creator.execute("CREATE TABLE being_created (x)")
    tries: list[str] = []  # the store's attempts to switch to WAL
    retried = threading.Event()

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.set_trace_callback(seen)
        return connection

    def seen(statement: str) -> None:
        if "journal_mode=WAL" in statement:
            tries.append(statement)
            if len(tries) == 2:  # the first try met the lock, and the store did not give up
                retried.set()

    def release() -> None:
        retried.wait(SAFETY_CAP)
        creator.execute("COMMIT")

    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", traced)
    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        store = Store(tmp_path)
    finally:
        retried.set()  # whatever happened, the releaser commits and ends
        releaser.join()
        creator.close()
    assert len(tries) >= 2
    store.put_answers("m", [(request_hash("a"), "1")])
    assert store.count("m") == 1
    store.close()
