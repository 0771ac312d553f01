"""`evalsuite run` with every hallucination probe kind on scripted models whose answers are known in advance
(always abstain, never abstain, always right, ...): the exact metric values each probe then reports, the
issue's gate on the fabricated-entity probe, seeded item sets, and configs refused before any model loads.

The scripted model (``scripted.py``) finds right answers in the raw data files, not in the probes' items."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy import stats

from evalsuite import cli
from evalsuite.config import probe_config
from evalsuite.records import SampleRecord, read_samples
from tests.conftest import STORIES
from tests.probes.hallucination import scripted
from tests.probes.hallucination.scripted import model

SEED = 7
FABRICATED = 20  # fabricated items (and as many controls): 0 of 20 has a Wilson upper bound of 0.161 < 0.2
UNANSWERABLE = 10
HALUEVAL = 10
FAITHFULNESS = 8  # 4 template facts (1 agreeing with memory: round(4 * 0.25)) and 4 edited SQuAD passages
TRIVIA = 4
SAMPLES = 3
ARC = 10
ARC_GOLDS = [2, 1, 2, 3, 3, 1, 2, 2, 1, 0]  # the first ten ARC-Challenge rows: one has its answer first
GATE = {"kind": "threshold", "task": "fabricated", "metric": "hallucination_rate", "max": 0.2}
PROBES: list[dict[str, Any]] = [
    {"kind": "fabricated", "limit": FABRICATED, "embedding": False},
    {"kind": "unanswerable", "limit": UNANSWERABLE, "embedding": False},
    {"kind": "halueval", "limit": HALUEVAL},
    {"kind": "faithfulness", "limit": FAITHFULNESS},
    {
        "kind": "self_consistency",
        "tasks": ["triviaqa_local"],
        "limit": TRIVIA,
        "samples": SAMPLES,
        "embedding": False,
    },
    {"kind": "calibration", "tasks": ["arc_challenge_local"], "limit": ARC},
]
UNITS = {
    "fabricated",
    "unanswerable",
    "halueval",
    "faithfulness",
    "self_consistency/triviaqa_local",
    "calibration/arc_challenge_local",
}


def write_config(
    folder: Path, name: str, body: dict[str, Any], data_dir: Path | None, seed: int = SEED
) -> Path:
    run: dict[str, Any] = {"name": name, "output_dir": str(folder / "out"), "seed": seed}
    if data_dir is not None:
        run["data_dir"] = str(data_dir)
    config = {"run": run, "stats": {"resamples": 200, "interval_resamples": 200}, **body}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cli(folder: Path, config: Path) -> int:
    return cli.main(["run", str(config), "--cache-dir", str(folder / "cache")])


@pytest.fixture(scope="module")
def scripted_backend(data_dir: Path) -> Iterator[str]:
    scripted.register(data_dir)
    try:
        yield scripted.BACKEND
    finally:
        scripted.unregister()


@pytest.fixture(scope="module")
def run_dir(scripted_backend: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hallucination-run")
    body = {
        "models": [model(b) for b in scripted.BEHAVIOURS],
        "probes": PROBES,
        "gates": {"rules": [GATE]},
    }
    assert run_cli(folder, write_config(folder, "scripted", body, data_dir)) == 1  # never-abstain fails
    return folder / "out" / "scripted"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[SampleRecord]:
    return list(read_samples(run_dir / "samples.jsonl"))


def metrics_of(results: dict[str, Any], behaviour: str, unit: str) -> dict[str, dict[str, Any]]:
    (result,) = [r for r in results["results"] if r["model"] == behaviour and r["task"] == unit]
    return result["metrics"]  # type: ignore[no-any-return]


def values(results: dict[str, Any], behaviour: str, unit: str) -> dict[str, float | None]:
    return {name: m["value"] for name, m in metrics_of(results, behaviour, unit).items()}


def records_of(records: list[SampleRecord], behaviour: str, unit: str) -> list[SampleRecord]:
    return [r for r in records if r.model == behaviour and r.task == unit]


def assert_wilson(metric: dict[str, Any], n: int) -> None:
    """A share of n with the Wilson bounds of scipy's binomtest."""
    assert metric["n"] == n and metric["n_errors"] == 0
    assert metric["ci_method"] == "wilson"
    successes = round(metric["value"] * n)
    assert metric["value"] == successes / n
    interval = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert metric["ci_low"] == pytest.approx(interval.low, abs=1e-12)
    assert metric["ci_high"] == pytest.approx(interval.high, abs=1e-12)


def test_every_model_has_every_unit_without_errors(
    results: dict[str, Any], records: list[SampleRecord]
) -> None:
    units = {(r["model"], r["task"]) for r in results["results"]}
    assert units == {(b, u) for b in scripted.BEHAVIOURS for u in UNITS}
    assert [r for r in records if r.error is not None] == []
    for result in results["results"]:
        assert {m["n_errors"] for m in result["metrics"].values()} == {0}, result["task"]


# --- fabricated entities ---


def test_fabricated_always_abstaining(results: dict[str, Any], records: list[SampleRecord]) -> None:
    metrics = metrics_of(results, "abstain", "fabricated")
    assert values(results, "abstain", "fabricated") == {
        "hallucination_rate": 0.0,
        "abstention_rate": 1.0,
        "control_accuracy": 0.0,
        "control_abstention_rate": 1.0,
    }
    for metric in metrics.values():
        assert_wilson(metric, FABRICATED)
    mine = records_of(records, "abstain", "fabricated")
    assert len(mine) == 2 * FABRICATED
    assert [r.probe.details["fabricated"] for r in mine if r.probe] == [True, False] * FABRICATED
    for record in mine:
        assert record.generation == scripted.IDK and record.probe is not None
        assert (record.probe.details["rule"], record.probe.details["similarity"]) == ("dont_know", None)


def test_fabricated_never_abstaining(results: dict[str, Any]) -> None:
    assert values(results, "wrong", "fabricated") == {
        "hallucination_rate": 1.0,
        "abstention_rate": 0.0,
        "control_accuracy": 0.0,
        "control_abstention_rate": 0.0,
    }
    for metric in metrics_of(results, "wrong", "fabricated").values():
        assert_wilson(metric, FABRICATED)


def test_fabricated_always_right(results: dict[str, Any], records: list[SampleRecord]) -> None:
    assert values(results, "oracle", "fabricated") == {
        "hallucination_rate": 0.0,
        "abstention_rate": 1.0,
        "control_accuracy": 1.0,
        "control_abstention_rate": 0.0,
    }
    for metric in metrics_of(results, "oracle", "fabricated").values():
        assert_wilson(metric, FABRICATED)
    for record in records_of(records, "oracle", "fabricated"):
        assert record.probe is not None
        if not record.probe.details["fabricated"]:  # answered with the first alias, and scored right
            assert record.target and record.generation == f"It is {record.target[0]}."
            assert record.probe.score == 1.0


# --- unanswerable (SQuAD 2.0) ---


def test_unanswerable_always_abstaining(results: dict[str, Any]) -> None:
    metrics = metrics_of(results, "abstain", "unanswerable")
    assert values(results, "abstain", "unanswerable") == {
        "abstention_f1": pytest.approx(2 / 3),  # precision 1/2, recall 1
        "abstention_precision": 0.5,  # the share of unanswerable questions in the balanced sample
        "abstention_recall": 1.0,
        "exact_match": 0.0,
        "f1": 0.0,
        "false_abstention_rate": 1.0,
    }
    assert_wilson(metrics["abstention_precision"], UNANSWERABLE)
    for name in ("abstention_recall", "exact_match", "false_abstention_rate"):
        assert_wilson(metrics[name], UNANSWERABLE // 2)
    assert metrics["abstention_f1"]["n"] == UNANSWERABLE


def test_unanswerable_always_right(results: dict[str, Any], records: list[SampleRecord]) -> None:
    assert values(results, "oracle", "unanswerable") == {
        "abstention_f1": 1.0,
        "abstention_precision": 1.0,
        "abstention_recall": 1.0,
        "exact_match": 1.0,
        "f1": 1.0,
        "false_abstention_rate": 0.0,
    }
    metrics = metrics_of(results, "oracle", "unanswerable")
    assert_wilson(metrics["abstention_precision"], UNANSWERABLE // 2)
    assert_wilson(metrics["false_abstention_rate"], UNANSWERABLE // 2)
    mine = records_of(records, "oracle", "unanswerable")
    assert sum(bool(r.doc["unanswerable"]) for r in mine) == UNANSWERABLE // 2
    assert all(r.probe is not None and r.probe.score == 1.0 for r in mine)


def test_unanswerable_never_abstaining(results: dict[str, Any]) -> None:
    metrics = metrics_of(results, "wrong", "unanswerable")
    assert values(results, "wrong", "unanswerable") == {
        "abstention_f1": 0.0,
        "abstention_precision": None,  # no abstentions: undefined
        "abstention_recall": 0.0,
        "exact_match": 0.0,
        "f1": 0.0,
        "false_abstention_rate": 0.0,
    }
    assert metrics["abstention_precision"]["n"] == 0
    assert_wilson(metrics["abstention_recall"], UNANSWERABLE // 2)


# --- HaluEval ---


def test_halueval_always_yes(results: dict[str, Any], records: list[SampleRecord]) -> None:
    metrics = metrics_of(results, "yes", "halueval")
    assert values(results, "yes", "halueval") == {
        "accuracy": 0.5,
        "accuracy_parsed": 0.5,
        "unparseable_rate": 0.0,
        "hallucinated_recall": 1.0,
        "right_answer_accuracy": 0.0,
    }
    assert_wilson(metrics["accuracy"], HALUEVAL)
    assert_wilson(metrics["hallucinated_recall"], HALUEVAL // 2)
    assert_wilson(metrics["right_answer_accuracy"], HALUEVAL // 2)
    assert all(r.probe is not None and r.probe.answer is True for r in records_of(records, "yes", "halueval"))


def test_halueval_unparseable(results: dict[str, Any]) -> None:
    metrics = metrics_of(results, "maybe", "halueval")
    assert values(results, "maybe", "halueval") == {
        "accuracy": 0.0,
        "accuracy_parsed": None,  # no parseable reply
        "unparseable_rate": 1.0,
        "hallucinated_recall": 0.0,
        "right_answer_accuracy": 0.0,
    }
    assert metrics["accuracy_parsed"]["n"] == 0
    assert_wilson(metrics["unparseable_rate"], HALUEVAL)


def test_halueval_always_right(results: dict[str, Any]) -> None:
    assert values(results, "oracle", "halueval") == {
        "accuracy": 1.0,
        "accuracy_parsed": 1.0,
        "unparseable_rate": 0.0,
        "hallucinated_recall": 1.0,
        "right_answer_accuracy": 1.0,
    }


# --- faithfulness ---


def test_faithfulness_sources(records: list[SampleRecord]) -> None:
    mine = records_of(records, "oracle", "faithfulness")
    sources = [r.probe.details["source"] for r in mine if r.probe]
    assert sources == ["template"] * 4 + ["squad"] * 4
    assert [r.probe.details["counterfactual"] for r in mine if r.probe].count(False) == 1


def test_faithfulness_following_the_passage(results: dict[str, Any]) -> None:
    metrics = metrics_of(results, "oracle", "faithfulness")
    assert values(results, "oracle", "faithfulness") == {
        "faithfulness": 1.0,
        "counterfactual_faithfulness": 1.0,
        "memory_rate": 0.0,
    }
    assert_wilson(metrics["faithfulness"], FAITHFULNESS)
    assert_wilson(metrics["memory_rate"], FAITHFULNESS - 1)


def test_faithfulness_answering_from_memory(results: dict[str, Any]) -> None:
    metrics = metrics_of(results, "memory", "faithfulness")
    assert values(results, "memory", "faithfulness") == {
        "faithfulness": 1 / FAITHFULNESS,  # only where the passage agrees with memory
        "counterfactual_faithfulness": 0.0,
        "memory_rate": 1.0,
    }
    assert_wilson(metrics["counterfactual_faithfulness"], FAITHFULNESS - 1)
    assert_wilson(metrics["memory_rate"], FAITHFULNESS - 1)


# --- self-consistency ---

CONSISTENCY = "self_consistency/triviaqa_local"


def test_consistent_and_right(results: dict[str, Any], records: list[SampleRecord]) -> None:
    metrics = metrics_of(results, "oracle", CONSISTENCY)
    assert values(results, "oracle", CONSISTENCY) == {
        "accuracy": 1.0,
        "semantic_entropy": 0.0,
        "auroc_semantic_entropy": None,  # no wrong answer: AUROC is undefined
        "auroc_disagreement": None,
    }
    assert_wilson(metrics["accuracy"], TRIVIA)
    assert metrics["auroc_semantic_entropy"]["ci_low"] is None
    sampled = [r for r in records_of(records, "oracle", CONSISTENCY) if r.variant == "sampled"]
    assert len(sampled) == TRIVIA
    for record in sampled:
        assert record.probe is not None and len(record.probe.details["samples"]) == SAMPLES
        assert record.probe.details["clusters"] == [0] * SAMPLES
        assert record.metrics["disagreement"] == 0.0


def test_uncertainty_that_predicts_errors(results: dict[str, Any], records: list[SampleRecord]) -> None:
    metrics = metrics_of(results, "split", CONSISTENCY)
    assert values(results, "split", CONSISTENCY) == {
        "accuracy": 0.5,  # right on rows 0 and 2
        "semantic_entropy": pytest.approx(2 * math.log(SAMPLES) / TRIVIA),
        "auroc_semantic_entropy": 1.0,
        "auroc_disagreement": 1.0,
    }
    for name in ("auroc_semantic_entropy", "auroc_disagreement"):
        assert metrics[name]["n"] == TRIVIA
    mine = records_of(records, "split", CONSISTENCY)
    greedy = {r.doc_id: r.metrics["exact_match"] for r in mine if r.variant == "clean"}
    assert greedy == {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    for record in (r for r in mine if r.variant == "sampled"):
        assert record.probe is not None
        assert record.probe.details["clusters"] == ([0] * SAMPLES if record.doc_id % 2 == 0 else [1, 2, 3])
        assert record.metrics["disagreement"] == float(record.doc_id % 2)


# --- calibration ---

CALIBRATION = "calibration/arc_challenge_local"


def test_calibration_of_a_nearly_certain_right_model(results: dict[str, Any]) -> None:
    confidence = 1 / (1 + 3 * math.exp(-50 + 0.001))  # softmax of the gold option: -0.001 against 3 x -50
    assert values(results, "oracle", CALIBRATION) == {
        "ece": pytest.approx(1 - confidence, abs=1e-15),
        "brier": pytest.approx((1 - confidence) ** 2 + 3 * ((1 - confidence) / 3) ** 2, abs=1e-15),
        "accuracy": 1.0,
        "mean_confidence": pytest.approx(confidence, abs=1e-15),
    }
    assert_wilson(metrics_of(results, "oracle", CALIBRATION)["accuracy"], ARC)


def test_calibration_of_a_certain_right_model(results: dict[str, Any], records: list[SampleRecord]) -> None:
    """A gold option with log-likelihood exactly 0 (probability 1) is a certain right answer, as each record
    scores it; it must not count as a missing log-likelihood."""
    mine = records_of(records, "certain", CALIBRATION)
    assert [r.metrics["acc"] for r in mine] == [1.0] * ARC
    assert all(
        r.choices and r.choices[r.target].loglikelihood == 0.0 for r in mine if isinstance(r.target, int)
    )
    assert values(results, "certain", CALIBRATION) == {
        "ece": pytest.approx(0.0, abs=1e-15),
        "brier": pytest.approx(0.0, abs=1e-15),
        "accuracy": 1.0,
        "mean_confidence": pytest.approx(1.0, abs=1e-15),
    }


def test_calibration_of_uniform_likelihoods(results: dict[str, Any]) -> None:
    accuracy = ARC_GOLDS.count(0) / ARC  # ties go to the first option
    assert values(results, "wrong", CALIBRATION) == {
        "ece": pytest.approx(abs(accuracy - 1 / 4)),  # every confidence 1/4: one bin
        "brier": pytest.approx(3 / 4),  # (k - 1) / k
        "accuracy": accuracy,
        "mean_confidence": pytest.approx(1 / 4),
    }
    assert_wilson(metrics_of(results, "wrong", CALIBRATION)["accuracy"], ARC)


def test_calibration_reliability_bins(results: dict[str, Any]) -> None:
    (result,) = [r for r in results["results"] if r["model"] == "wrong" and r["task"] == CALIBRATION]
    bins = result["probe"]["reliability"]
    assert [b["count"] for b in bins] == [0, 0, ARC] + [0] * 7
    assert bins[2]["mean_confidence"] == pytest.approx(0.25)
    assert bins[2]["accuracy"] == pytest.approx(ARC_GOLDS.count(0) / ARC)


# --- the gate ---


def test_the_gate_in_the_run_with_every_model(results: dict[str, Any]) -> None:
    verdict = results["gates"]
    assert verdict["passed"] is False
    status = {c["target"]: c["status"] for c in verdict["checks"]}
    assert status["abstain on fabricated (hallucination_rate)"] == "pass"
    assert status["oracle on fabricated (hallucination_rate)"] == "pass"
    assert status["wrong on fabricated (hallucination_rate)"] == "fail"


@pytest.mark.parametrize(("behaviour", "code"), [("abstain", 0), ("wrong", 1)])
def test_the_hallucination_gate_alone(
    scripted_backend: str, data_dir: Path, tmp_path: Path, behaviour: str, code: int
) -> None:
    body = {
        "models": [model(behaviour)],
        "probes": [{"kind": "fabricated", "limit": 16, "embedding": False}],  # 0/16: upper bound 0.194
        "gates": {"rules": [GATE]},
    }
    assert run_cli(tmp_path, write_config(tmp_path, "gate", body, data_dir)) == code
    verdict = json.loads((tmp_path / "out" / "gate" / "results.json").read_text(encoding="utf-8"))["gates"]
    (check,) = verdict["checks"]
    assert check["status"] == ("pass" if code == 0 else "fail")
    assert (tmp_path / "out" / "gate" / "junit.xml").is_file()


# --- seeded item sets ---

SEEDED = [p for p in PROBES if "tasks" not in p]
TASKLESS = ("fabricated", "unanswerable", "halueval", "faithfulness")  # the probes that make their items


def seeded_prompts(folder: Path, name: str, seed: int, data_dir: Path) -> dict[tuple[str, int], str]:
    """(unit, doc id) -> prompt of a run of the never-abstaining model on the probes that make items."""
    body = {"models": [model("wrong")], "probes": SEEDED}
    assert run_cli(folder, write_config(folder, name, body, data_dir, seed)) == 0
    return {(r.task, r.doc_id): r.prompt for r in read_samples(folder / "out" / name / "samples.jsonl")}


def test_item_sets_follow_the_seed(
    scripted_backend: str, data_dir: Path, tmp_path: Path, records: list[SampleRecord]
) -> None:
    first = {(r.task, r.doc_id): r.prompt for r in records if r.model == "wrong" and r.task in TASKLESS}
    again = seeded_prompts(tmp_path, "again", SEED, data_dir)
    other = seeded_prompts(tmp_path, "other", SEED + 1, data_dir)
    assert again == first
    assert set(other) == set(first)
    for unit in TASKLESS:
        mine = {k: v for k, v in first.items() if k[0] == unit}
        theirs = {k: v for k, v in other.items() if k[0] == unit}
        assert sorted(mine.values()) != sorted(theirs.values()), unit


# --- configs refused while planning: exit 2, nothing written, no model loaded ---

HUB_MODEL = [{"name": "m", "path": str(STORIES)}]  # never loaded: every config here fails while planning


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            {"kind": "fabricated", "tasks": ["triviaqa_local"]},
            "kind 'fabricated' brings its own data and takes no 'tasks'",
        ),
        (
            {"kind": "self_consistency", "tasks": ["arc_challenge_local"], "limit": 2},
            "self-consistency needs a generation task; 'arc_challenge_local' is not one",
        ),
        (
            {"kind": "calibration", "tasks": ["triviaqa_local"], "limit": 2},
            "calibration needs a multiple-choice task; 'triviaqa_local' is not one",
        ),
        ({"kind": "self_consistency"}, "kind 'self_consistency' needs 'tasks'"),
        ({"kind": "halueval", "samples": 3}, "'samples' does not apply to kind 'halueval'"),
    ],
)
def test_bad_hallucination_probe_configs(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    probe: dict[str, Any],
    message: str,
) -> None:
    path = write_config(tmp_path, "bad", {"models": HUB_MODEL, "probes": [probe]}, data_dir)
    assert run_cli(tmp_path, path) == 2
    assert message in " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("probe", "relative"),
    [
        ({"kind": "unanswerable", "embedding": False}, "squad_v2/squad_v2_dev_from_explorer.json"),
        ({"kind": "halueval"}, "halueval/decodingtrust_qa_sampled_data.json"),
        ({"kind": "faithfulness"}, "squad_v2/squad_v2_dev_from_explorer.json"),
    ],
)
def test_probe_data_missing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    probe: dict[str, Any],
    relative: str,
) -> None:
    """No data folder at all, then one without the probe's file: a clear error naming the file."""
    monkeypatch.delenv("EVALSUITE_DATA_DIR", raising=False)
    kind = probe["kind"]
    probes = [{**probe, "limit": 2}]
    no_folder = write_config(tmp_path, "nodata", {"models": HUB_MODEL, "probes": probes}, None)
    assert run_cli(tmp_path, no_folder) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"probe '{kind}' reads {relative} from the data folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    without = write_config(tmp_path, "nofile", {"models": HUB_MODEL, "probes": probes}, empty)
    assert run_cli(tmp_path, without) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{empty / relative} does not exist" in err
    assert not (tmp_path / "out").exists()


def test_embedding_can_be_turned_off_where_the_docs_say() -> None:
    """docs/hallucination.md: `embedding` applies to fabricated, unanswerable and self_consistency (the
    unanswerable probe builds its abstention detector from it, like the fabricated one)."""
    for kind, tasks in (("fabricated", ()), ("unanswerable", ()), ("self_consistency", ("triviaqa_local",))):
        assert (
            probe_config({"kind": kind, "tasks": list(tasks), "embedding": False}).settings()["embedding"]
            is False
        )
