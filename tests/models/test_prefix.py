"""Shared-prefix scoring gives the naive per-request scores, on dense, MoE and SSM models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance

from evalsuite.config import ModelConfig
from evalsuite.models import BACKENDS, LoadContext, prefix
from evalsuite.models.hf import HFBackend
from evalsuite.models.prefix import (
    MIN_SHARED,
    ROW_BUDGET,
    Member,
    Row,
    fitting,
    pack,
    packed_batch,
    shared_start,
)

# Several answers per question, one-token and long answers, a shared context that is also a prefix of
# another context, a trailing space that moves into the continuation, and a request too long to share.
PAIRS = [
    ("Once upon a time", " there was a little girl"),
    ("Once upon a time", " x"),
    ("Once upon a time", " the end of the story came very soon"),
    ("Once upon a time there", " was a cat"),
    ("The cat", " sat on the mat."),
    ("The cat", " ran"),
    ("Lily liked to play", " outside"),
    ("A", " very long continuation that has many more tokens than the others in this batch"),
    ("She said ", "hello"),
]
DOCUMENTS = [
    "Once upon a time there was a cat. " * 40,
    "Short doc.",
    "Lily and Ben played in the park all day.",
]
ARCHITECTURES = ["llama", "mixtral", "qwen2_moe", "olmoe", "mamba", "mamba2"]


def load(path: Path, tmp_path: Path, **settings: object) -> HFBackend:
    config = ModelConfig.model_validate({"name": "m", "path": str(path), **settings})
    backend = BACKENDS.get("hf")(config, LoadContext(tmp_path, seed=0))
    assert isinstance(backend, HFBackend)
    return backend


def score(backend: HFBackend) -> tuple[list[tuple[float, bool]], list[float]]:
    pairs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]
    rolling = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(DOCUMENTS)]
    return backend.loglikelihood(pairs, disable_tqdm=True), backend.loglikelihood_rolling(rolling)


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_shared_prefix_scores_equal_naive_scores(
    kind: str, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    shared = load(tiny_model(kind), tmp_path, batch_size=3, max_length=64)
    naive = load(tiny_model(kind), tmp_path, batch_size=3, max_length=64, share_prefix=False)
    (shared_ll, shared_rolling), (naive_ll, naive_rolling) = score(shared), score(naive)
    for (a, greedy_a), (b, greedy_b) in zip(shared_ll, naive_ll, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    assert shared_rolling == pytest.approx(naive_rolling, abs=1e-4)
    # the shared path ran fewer tokens through the model for the same answers
    assert shared.telemetry().scored_tokens < naive.telemetry().scored_tokens


INSTRUCTION = (  # 84 tokens: worth a pass of its own wherever two rows share it (kvcache.PASS_COST)
    "Answer each question about the story of Lily and her dog Max, who lived in a small house at the end "
    "of a long road, next to a big park with a pond and tall trees.\n\n"
)


def few_shot(first: str, *questions: str) -> list[tuple[str, str]]:
    """Requests of questions after the instruction, two answers each."""
    pairs = [(INSTRUCTION + first, answer) for answer in (" Because she was late", " yes")]
    return pairs + [
        (INSTRUCTION + q, answer) for q in questions for answer in (" home", " in the park today")
    ]


FEW_SHOT = few_shot("Why did Lily run?", "Where was Max?", "What did she eat", "How old is Lily?", "Who came")
# no two questions start alike: every batch of them shares exactly the instruction
DISTINCT = few_shot("Why did Lily run?", "Did Max bark?", "Can she eat", "How old is Lily?", "Is it cold")


def unique_nodes(backend: HFBackend, pairs: Sequence[tuple[str, str]]) -> int:
    """Distinct prefixes of the model inputs of all requests: the least any scorer must run."""
    seen = set()
    for context, continuation in pairs:
        context_enc, continuation_enc = backend._encode_pair(context, continuation)
        inputs = (context_enc + continuation_enc)[:-1]
        seen.update(tuple(inputs[: n + 1]) for n in range(len(inputs)))
    return len(seen)


def one_question_per_row(
    backend: HFBackend, monkeypatch: pytest.MonkeyPatch, requests: Sequence[tuple[str, str]]
) -> None:
    """Rows hold one question each (``ROW_BUDGET`` just above the longest request), as few-shot prompts
    longer than half of ``ROW_BUDGET`` get: rows that share a prefix then meet in batches."""
    pairs = [backend._encode_pair(context, continuation) for context, continuation in requests]
    monkeypatch.setattr(prefix, "ROW_BUDGET", max(len(c) + len(a) - 1 for c, a in pairs) + 1)
    monkeypatch.setattr(prefix, "FILL", 0)  # rows are filled only up to the longest row: no two fit
    rows, _ = pack(pairs, backend.max_length)
    assert [len(row.members) for row in rows] == [2] * 5


@pytest.mark.parametrize("kind", ["llama", "mixtral"])
@pytest.mark.parametrize("rows", [3, 8])  # batches of 3 and 2 rows, or one of 5: each reuses the prefix
def test_a_prefix_all_questions_share_runs_once(
    kind: str, rows: int, tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = load(tiny_model(kind), tmp_path, batch_size=rows)
    naive = load(tiny_model(kind), tmp_path, batch_size=rows, share_prefix=False)
    one_question_per_row(shared, monkeypatch, DISTINCT)
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(DISTINCT)]
    for (a, greedy_a), (b, greedy_b) in zip(
        shared.loglikelihood(requests, disable_tqdm=True),
        naive.loglikelihood(requests, disable_tqdm=True),
        strict=True,
    ):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    assert shared._prefixes.computed > 0  # the instruction came from the prefix store
    assert shared.telemetry().scored_tokens == unique_nodes(shared, DISTINCT)


def test_a_prefix_is_computed_apart_only_where_it_saves_a_pass(
    stories: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(FEW_SHOT)]
    backend = load(stories, tmp_path, batch_size=8)
    backend.loglikelihood(requests, disable_tqdm=True)
    assert backend._prefixes.computed == 0  # the questions make one row: a pass apart would save nothing
    one_question_per_row(backend, monkeypatch, FEW_SHOT)
    backend.loglikelihood(requests, disable_tqdm=True)
    instruction = len(backend.tok_encode(INSTRUCTION))
    assert instruction - 2 <= backend._prefixes.computed <= instruction + 1  # five rows share it


def test_answers_do_not_depend_on_the_prefixes_stored_before(
    stories: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run must answer bit for bit as an uninterrupted one, so a prefix's keys and values may
    not depend on which longer or shorter prefixes an earlier call left in the store."""
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(FEW_SHOT)]
    why = requests[:4]  # two questions starting "Wh": their batch shares the instruction and "Wh"
    fresh_backend = load(stories, tmp_path, batch_size=8)
    one_question_per_row(fresh_backend, monkeypatch, FEW_SHOT)
    fresh = fresh_backend.loglikelihood(why, disable_tqdm=True)
    assert len(fresh_backend._prefixes.stored) == 1
    used = load(stories, tmp_path, batch_size=8)
    used.loglikelihood(requests, disable_tqdm=True)  # five questions: they store the instruction alone
    instruction = len(used.tok_encode(INSTRUCTION))
    assert instruction - 2 <= min(map(len, used._prefixes.stored)) <= instruction + 1
    assert used.loglikelihood(why, disable_tqdm=True) == fresh
    longer = load(stories, tmp_path, batch_size=8)
    longer.loglikelihood(why, disable_tqdm=True)  # the other way round: a longer prefix stored first
    assert longer.loglikelihood(requests, disable_tqdm=True) == used.loglikelihood(
        requests, disable_tqdm=True
    )


def test_the_shared_start_stops_where_a_row_branches_or_a_context_ends() -> None:
    rows, _ = pack([([1, 2, 3, 4, 5], [6]), ([1, 2, 3, 4, 5], [7, 8])], max_length=64)
    assert shared_start(rows) == 4  # the context's last token predicts the answers: not shared apart
    branched, _ = pack([([1, 2, 3, 4, 5, 6], [7]), ([1, 2, 3, 9, 9, 9], [7])], max_length=64, merge=False)
    assert shared_start(branched) == 3  # two rows agree on 1 2 3 only
    merged, _ = pack([([1] * 20 + [2] * 20, [7]), ([1] * 20 + [3] * 20, [7])], max_length=64)
    assert len(merged) == 1 and shared_start(merged) == 20  # one row, branching after the 20th token


def test_a_scoring_batch_ends_where_padding_would_pass_its_share_and_its_slack() -> None:
    assert fitting([100, 99, 50], 0.05) == 2
    assert fitting([100, 96, 96, 96], 0.05) == 4  # 12 of 400 positions padding: 3%
    assert fitting([100, 89], 0.05) == 1  # 11 of 200 positions: more than 5%
    assert fitting([100, 90], 0.05) == 2  # 10 of 200: 5% is the most allowed
    assert fitting([7], 0.0) == 1
    assert fitting([100, 89], 0.05, slack=11) == 2  # 11 positions: within the slack
    assert fitting([100, 89, 89], 0.05, slack=11) == 2  # 22 positions: more than both
    assert fitting([20, 10, 10, 10], 0.03, slack=64) == 4  # 30 of 80 positions, but only 30


def test_moe_routing_is_still_measured_with_packed_rows(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    backend = load(tiny_model("mixtral"), tmp_path)
    score(backend)
    routing = backend.telemetry().routing
    assert routing is not None and routing.tokens == backend.telemetry().scored_tokens


def test_requests_of_one_context_share_a_row_and_long_ones_stand_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefix, "FILL", 0)  # rows are filled only up to the longest row: no two fit
    pairs = [([1, 2, 3], [4, 5]), ([1, 2, 3], [6]), ([9], [7, 7, 7]), ([1, 2], [8] * 10)]
    rows, alone = pack(pairs, max_length=8)
    assert alone == [3]  # 2 context + 10 continuation - 1 fed > 8: truncated on its own, like lm-eval
    assert rows == [
        Row((1, 2, 3, 4), (-1, 0, 1, 2), (Member(0, (4, 5), 3, (2, 3)), Member(1, (6,), 3, (2,)))),
        Row((9, 7, 7), (-1, 0, 1), (Member(2, (7, 7, 7), 1, (0, 1, 2)),)),
    ]


def test_questions_sharing_a_long_prefix_share_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix, "FILL", 0)  # rows are filled only up to the longest row: no two fit
    shots = list(range(100, 100 + MIN_SHARED))  # the few-shot examples both questions start with
    pairs = [([*shots, 1], [5]), ([*shots, 1], [6]), ([*shots, 2], [5]), ([3, *shots], [5])]
    rows, _ = pack(pairs, max_length=64)
    assert [len(r.members) for r in rows] == [3, 1]  # the last question shares nothing at its start
    assert rows[0].length == MIN_SHARED + 2  # the shots once, then each question's own token


def test_short_questions_fill_rows_up_to_the_longest_row_or_the_fill_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefix, "FILL", 6)
    pairs = [([9, 9, 9, 9, 9, 9], [1, 2]), ([5, 1], [3]), ([5, 2], [4]), ([7], [8, 8]), ([5, 1], [6])]
    rows, _ = pack(pairs, max_length=64)
    # rows are filled in the order of their tokens, each up to the longest row's 7 tokens; a question's
    # requests stay together, and questions that start alike share their start
    assert rows == [
        Row((9, 9, 9, 9, 9, 9, 1), (-1, 0, 1, 2, 3, 4, 5), (Member(0, (1, 2), 6, (5, 6)),)),
        Row(
            (5, 1, 2, 7, 8),
            (-1, 0, 0, -1, 3),
            (
                Member(1, (3,), 2, (1,)),
                Member(4, (6,), 2, (1,)),
                Member(2, (4,), 2, (2,)),
                Member(3, (8, 8), 1, (3, 4)),
            ),
        ),
    ]
    monkeypatch.setattr(prefix, "FILL", 12)
    assert [r.length for r in pack(pairs, max_length=64)[0]] == [12]  # all of them: 5 + 7 tokens
    assert [r.length for r in pack(pairs, max_length=64, merge=False)[0]] == [7, 2, 2, 2, 2]  # SSMs: unfilled


def test_the_shared_start_ignores_the_other_questions_of_a_filled_row() -> None:
    row = Row((1, 2, 3, 4, 8, 9), (-1, 0, 1, 2, -1, 4), (Member(0, (5,), 4, (3,)), Member(1, (7,), 2, (5,))))
    assert shared_start([row]) == 3  # the second question starts a tree of its own: it sees none of 1 2 3


def test_the_prefix_computed_apart_is_the_one_that_saves_the_call_most() -> None:
    starts = prefix.Starts(
        [
            Row(tuple([1] * 40 + [2] * 10 + [3]), tuple(range(-1, 50)), ()),
            Row(tuple([1] * 40 + [2] * 10 + [4]), tuple(range(-1, 50)), ()),
            Row(tuple([1] * 40 + [5]), tuple(range(-1, 40)), ()),
            Row(tuple([1] * 40 + [6]), tuple(range(-1, 40)), ()),
            Row((7, 7), (-1, 0), ()),
        ]
    )
    # four rows share forty 1s (120 tokens saved), two share fifty tokens (50 saved)
    assert starts.worth([1] * 40 + [2] * 10, cost=64) == 40
    assert starts.worth([1] * 40 + [2] * 10, cost=121) == 0  # nothing saves that much
    assert starts.worth([1] * 20, cost=60) == 20  # never longer than the batch's own start
    assert starts.worth([7], cost=1) == 0  # no other row starts with it


def test_state_space_rows_hold_one_context_each() -> None:
    pairs = [([1, 2], [3, 4]), ([1, 2, 3], [5])]  # the second context is a prefix of the first request
    rows, _ = pack(pairs, max_length=64, merge=False)
    assert [r.context for r in rows] == [(1, 2), (1, 2, 3)]


def test_a_row_is_split_when_it_exceeds_the_budget() -> None:
    long = ROW_BUDGET // 2
    pairs = [([1], [3] * long), ([1], [4] * long), ([1], [5] * long)]
    rows, alone = pack(pairs, max_length=2 * ROW_BUDGET)
    assert not alone
    assert sorted(len(r.members) for r in rows) == [1, 2] and all(r.length <= ROW_BUDGET for r in rows)


def test_each_token_sees_its_ancestors_only() -> None:
    row = Row(
        (10, 11, 20, 21, 30),
        (-1, 0, 1, 2, 1),
        (Member(0, (20, 21, 22), 2, (1, 2, 3)), Member(1, (30, 31), 2, (1, 4))),
    )
    batch = packed_batch([row], pad_id=0)
    assert batch.positions.tolist() == [[0, 1, 2, 3, 2]]  # the second answer restarts after the context
    allowed = (batch.attention_mask(torch.float32)[0, 0] == 0).int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],  # the second answer's token never sees the first answer
    ]
    assert batch.predicting == [(0, (1, 2, 3)), (0, (1, 4))]


def test_pack_lays_out_a_tree_the_mask_follows() -> None:
    rows, _ = pack([([10, 11], [20, 21, 22]), ([10, 11], [30, 31])], max_length=16)
    (row,) = rows
    assert row.tokens == (10, 11, 20, 21, 30) and row.parents == (-1, 0, 1, 2, 1)
    assert [m.predicting for m in row.members] == [(1, 2, 3), (1, 4)]


def test_padding_never_leaves_a_softmax_row_empty() -> None:
    rows, _ = pack([([1, 2, 3], [4, 5]), ([7], [2])], max_length=16)
    mask = packed_batch(rows, pad_id=0).attention_mask(torch.float32)
    assert bool(((mask == 0).sum(-1) > 0).all())


def test_out_of_memory_on_gpu_halves_the_batch_and_retries(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    backend = load(tiny_model("llama"), tmp_path, batch_size=8)
    backend.torch_device = torch.device("cuda")  # only the back-off decision reads it here
    seen: list[int] = []

    def score(batch: Sequence[int]) -> None:
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        seen.extend(batch)

    backend._batched(list(range(11)), score)
    assert seen == list(range(11))  # every item once, in order
    assert backend.batch_rows == 2 and backend.telemetry().oom_backoffs == 2


def test_out_of_memory_on_cpu_is_not_retried(tiny_model: Callable[[str], Path], tmp_path: Path) -> None:
    backend = load(tiny_model("llama"), tmp_path, batch_size=8)
    tried: list[list[int]] = []

    def score(batch: Sequence[int]) -> None:
        tried.append(list(batch))
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError, match="out of memory"):
        backend._batched([1, 2, 3], score)
    assert tried == [[1, 2, 3]]  # one try, the whole batch: no smaller retry on the CPU
    assert backend.batch_rows == 8 and backend.telemetry().oom_backoffs == 0
