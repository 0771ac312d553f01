"""Adaptive attacks through `evalsuite run`: a keyword model whose answers are known in advance (every
recipe, and a budget of one query), the real tiny model, and an attack on a generation task refused."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lm_eval.api.instance import Instance

from evalsuite import cli
from evalsuite.config import ModelConfig
from evalsuite.models.base import BACKENDS, Backend, LoadContext, ModelInfo, Telemetry
from evalsuite.probes.adversarial.attack import STATUSES
from evalsuite.records import SampleRecord, read_samples
from tests.conftest import STORIES

ATTACK_METRICS = {"attack_success_rate", "clean", "perturbed", "pdr", "queries", "perturbed_word_share"}

KEYWORD = "charming"  # the keyword model answers " positive" iff the prompt contains this, spelled exactly
BACKEND = "keyword-test"
LIMIT = 4
BUDGET = 40
RECIPES = {"deepwordbug": "dwb", "pruthi": "pruthi", "textbugger": "bugger"}
ONE_QUERY = "one-query"
UNITS = [*RECIPES.values(), ONE_QUERY]


class KeywordBackend(Backend):
    """SST-2 by one word: " positive" gets log-likelihood -1 when the context contains KEYWORD, else -3;
    " negative" always -2."""

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            if continuation == " positive":
                out.append((-1.0 if KEYWORD in context else -3.0, False))
            else:
                out.append((-2.0, False))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError

    def describe(self) -> ModelInfo:
        return ModelInfo("unknown", "keyword", 0, 0, "n/a", "none", 0, "0" * 32, "none")

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


def load_keyword(config: ModelConfig, context: LoadContext) -> KeywordBackend:
    return KeywordBackend()


@pytest.fixture(scope="module")
def keyword_backend() -> Iterator[str]:
    BACKENDS.register(BACKEND)(load_keyword)
    try:
        yield BACKEND
    finally:
        BACKENDS._items.pop(BACKEND)  # the registry has no public way to forget a backend


def write_config(folder: Path, name: str, body: dict[str, Any], data_dir: Path) -> Path:
    config = {
        "run": {"name": name, "output_dir": str(folder / "out"), "data_dir": str(data_dir), "seed": 5},
        "stats": {"resamples": 500, "interval_resamples": 500},
        **body,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(
    keyword_backend: str, stories: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("attack-run")
    each = {"kind": "attack", "tasks": ["sst2_local"], "limit": LIMIT}
    probes = [
        {**each, "name": name, "recipe": recipe, "query_budget": BUDGET} for recipe, name in RECIPES.items()
    ]
    probes.append({**each, "name": ONE_QUERY, "query_budget": 1})
    models = [
        {"name": "keyword", "backend": keyword_backend, "path": "keyword/model"},
        {"name": "stories", "path": str(stories)},
    ]
    config = write_config(folder, "attack", {"models": models, "probes": probes}, data_dir)
    assert cli.main(["run", str(config), "--cache-dir", str(folder / "cache")]) == 0
    return folder / "out" / "attack"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return {(r["model"], r["task"].split("/")[0]): r for r in data["results"]}


@pytest.fixture(scope="module")
def pairs(run_dir: Path) -> dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]]:
    """(model, unit) -> per sample, its (clean, attack) records."""
    by_key: dict[tuple[str, str, int], dict[str, SampleRecord]] = {}
    for record in read_samples(run_dir / "samples.jsonl"):
        assert record.task.endswith("/sst2_local")
        by_key.setdefault((record.model, record.task.split("/")[0], record.doc_id), {})[record.variant] = (
            record
        )
    out: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]] = {}
    for (model, unit, doc_id), variants in sorted(by_key.items()):
        assert set(variants) == {"clean", "attack"}, (model, unit, doc_id)
        out.setdefault((model, unit), []).append((variants["clean"], variants["attack"]))
    return out


def expected_status(clean: SampleRecord, unit: str) -> str:
    """What the attack on the keyword model must end in, from the sentence and its label alone."""
    sentence, label = str(clean.doc["sentence"]), clean.doc["label"]
    if (KEYWORD in sentence) != (label == 1):
        return "skipped"  # the model is already wrong
    if unit == ONE_QUERY:
        return "failed"  # the one query is the clean prediction
    # a positive sentence is flipped by breaking the keyword; a negative one cannot gain it by typos
    return "success" if label == 1 else "failed"


def detail(record: SampleRecord) -> dict[str, Any]:
    assert record.probe is not None
    return record.probe.details


def test_the_keyword_sample_set_has_every_outcome(
    pairs: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]],
) -> None:
    statuses = [expected_status(clean, "dwb") for clean, _ in pairs["keyword", "dwb"]]
    assert sorted(statuses) == ["failed", "skipped", "skipped", "success"]  # sst2 rows 0-3


@pytest.mark.parametrize("unit", UNITS)
def test_keyword_model_attack_records(
    unit: str, pairs: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]]
) -> None:
    budget = 1 if unit == ONE_QUERY else BUDGET
    records = pairs["keyword", unit]
    assert len(records) == LIMIT
    for clean, attack in records:
        assert clean.probe is not None and attack.probe is not None
        assert clean.error is None and attack.error is None
        status = expected_status(clean, unit)
        info = detail(attack)
        assert info["status"] == status, (unit, clean.doc_id)
        assert 1 <= info["queries"] <= budget
        assert clean.probe.score == float(status != "skipped")
        assert attack.probe.original == clean.probe.original
        at = clean.prompt.rfind(clean.probe.original)
        assert (
            attack.prompt
            == clean.prompt[:at] + attack.probe.perturbed + clean.prompt[at + len(clean.probe.original) :]
        )
        if status == "success":
            assert attack.probe.score == 0.0 and attack.probe.answer == 0
            assert attack.probe.perturbed != attack.probe.original
            assert KEYWORD not in attack.probe.perturbed
            assert info["perturbed_word_share"] > 0
        elif status == "failed":
            assert attack.probe.score == 1.0
            assert KEYWORD in attack.probe.perturbed or KEYWORD not in attack.probe.original
        else:
            assert info["queries"] == 1  # textattack's one prediction of the clean text
            assert attack.probe.score == 0.0
            assert attack.probe.perturbed == attack.probe.original
            assert info["perturbed_words"] == 0 and info["perturbed_word_share"] == 0


@pytest.mark.parametrize("unit", UNITS)
def test_keyword_model_metrics_follow_from_the_outcomes(
    unit: str,
    results: dict[tuple[str, str], dict[str, Any]],
    pairs: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]],
) -> None:
    result = results["keyword", unit]
    metrics = {name: m["value"] for name, m in result["metrics"].items()}
    assert set(metrics) == ATTACK_METRICS
    assert result["primary_metric"] == "attack_success_rate"
    details = [detail(attack) for _, attack in pairs["keyword", unit]]
    status = [d["status"] for d in details]
    tried = [d for d in details if d["status"] != "skipped"]
    won = [d for d in details if d["status"] == "success"]
    assert result["probe"]["settings"]["outcomes"] == {s: status.count(s) for s in STATUSES}
    assert metrics["clean"] == len(tried) / LIMIT
    assert metrics["perturbed"] == status.count("failed") / LIMIT
    assert metrics["attack_success_rate"] == len(won) / len(tried)
    assert metrics["pdr"] == pytest.approx(1 - status.count("failed") / len(tried))
    assert metrics["queries"] == pytest.approx(sum(d["queries"] for d in tried) / len(tried))
    assert result["metrics"]["attack_success_rate"]["n"] == len(tried)
    assert result["metrics"]["queries"]["n"] == len(tried)
    if won:
        assert metrics["perturbed_word_share"] == pytest.approx(
            sum(d["perturbed_word_share"] for d in won) / len(won)
        )
    else:
        assert metrics["perturbed_word_share"] is None
    assert {m["n_errors"] for m in result["metrics"].values()} == {0}


@pytest.mark.parametrize("unit", list(RECIPES.values()))
def test_a_successful_attack_on_the_keyword_counts_one_perturbed_word(
    unit: str, pairs: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]]
) -> None:
    """Only the keyword has to change, and the greedy searches stop at the first success. TextBugger's
    space insertion ("c harming") splits the word in two: still one perturbed word of the original."""
    won = [detail(a) for _, a in pairs["keyword", unit] if detail(a)["status"] == "success"]
    assert won
    for info in won:
        assert info["perturbed_words"] == 1, info
        assert info["perturbed_word_share"] == pytest.approx(1 / info["words"])


def test_a_budget_of_one_query_never_attacks(results: dict[tuple[str, str], dict[str, Any]]) -> None:
    for model in ("keyword", "stories"):
        result = results[model, ONE_QUERY]
        outcomes = result["probe"]["settings"]["outcomes"]
        assert outcomes["success"] == outcomes["maximized"] == 0
        assert outcomes["failed"] + outcomes["skipped"] == LIMIT
        assert result["metrics"]["attack_success_rate"]["value"] in (0.0, None)


def test_a_query_count_gets_no_proportion_interval(results: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Every attacked sample used exactly one query: the mean is 1 with no spread. A Wilson interval
    (for proportions) would put most of its width below 1; docs/probes.md says `queries` is normal."""
    queries = results["keyword", ONE_QUERY]["metrics"]["queries"]
    assert queries["value"] == 1.0
    assert queries["ci_method"] != "wilson"
    assert queries["ci_low"] in (1.0, None)


def test_the_real_model_attack_runs_end_to_end(
    results: dict[tuple[str, str], dict[str, Any]],
    pairs: dict[tuple[str, str], list[tuple[SampleRecord, SampleRecord]]],
) -> None:
    for unit in UNITS:
        budget = 1 if unit == ONE_QUERY else BUDGET
        result = results["stories", unit]
        assert set(result["metrics"]) == ATTACK_METRICS
        outcomes = result["probe"]["settings"]["outcomes"]
        assert sum(outcomes.values()) == LIMIT
        for clean, attack in pairs["stories", unit]:
            assert clean.probe is not None and attack.probe is not None
            assert clean.error is None and attack.error is None
            info = detail(attack)
            assert info["status"] in STATUSES
            assert 1 <= info["queries"] <= budget
            # the record is rescored through the engine: it agrees with what the search saw
            assert clean.probe.score == float(info["status"] != "skipped"), (unit, clean.doc_id)
            if info["status"] == "success":
                assert attack.probe.score == 0.0 and attack.probe.perturbed != attack.probe.original
            elif info["status"] == "failed":
                assert attack.probe.score == 1.0
            elif info["status"] == "skipped":
                assert attack.probe.perturbed == attack.probe.original


def test_a_finished_attack_run_renders_and_gates_again(run_dir: Path, tmp_path: Path) -> None:
    """An attack adds a record for each sample it attacks, so its records outnumber its prepared variants:
    the manifest keeps the records per model, and reading the run back checks them against it."""
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    written: dict[tuple[str, str], int] = {}
    for record in read_samples(run_dir / "samples.jsonl"):
        written[record.model, record.task] = written.get((record.model, record.task), 0) + 1
    for unit, entry in manifest["probes"].items():
        assert entry["records"] == {model: written[model, unit] for model in ("keyword", "stories")}
        assert entry["variants"] == LIMIT  # the clean copies prepared before any model ran
    assert written["keyword", "dwb/sst2_local"] > LIMIT  # the attacked copies came while it ran
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    assert cli.main(["report", str(copy)]) == 0 and (copy / "report.html").is_file()


def test_an_attack_on_a_generation_task_is_a_config_error(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "models": [{"name": "m", "path": str(STORIES)}],  # never loaded: the config fails while planning
        "probes": [{"kind": "attack", "tasks": ["gsm8k_local"], "limit": 1}],
    }
    config = write_config(tmp_path, "bad", body, data_dir)
    assert cli.main(["run", str(config), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "attacks need a multiple-choice task" in err and "'gsm8k_local' is not one" in err
    assert not (tmp_path / "out").exists()


def test_every_recipe_the_config_accepts_has_one_builder_citing_its_paper() -> None:
    from typing import get_args

    from evalsuite.probes.adversarial.attack import RECIPES
    from evalsuite.probes.kinds.attack import AttackRecipe

    assert sorted(RECIPES) == sorted(get_args(AttackRecipe))
    for name, builder in RECIPES.items():
        assert builder.__doc__ is not None and re.search(r"\b20\d\d\b", builder.__doc__), name
