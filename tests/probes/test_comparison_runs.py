"""Variant against base on a probe, end to end: `evalsuite run` with scripted models on a typo probe, the
probe comparisons it writes, a probe_change gate that passes for a variant as robust as its base and
fails for a brittle one, `evalsuite gate` and `evalsuite compare` on the finished run, and the report;
and a gate on the hallucination rate of made-up entities.

The scripted models answer ARC-Challenge from a table built here from the task's own requests (never from
the probe's code): ``steady`` picks the right option of every prompt; ``brittle`` picks it on the task's
own prompts and a wrong option on any prompt whose text differs from them (a typo'd copy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lm_eval.api.instance import Instance

from evalsuite import cli
from evalsuite.config import ModelConfig
from evalsuite.models.base import BACKENDS, Backend, LoadContext, ModelInfo, Telemetry
from evalsuite.records import Results
from evalsuite.tasks import TaskCatalog, build_task, task_dirs
from tests.probes.hallucination import scripted
from tests.test_outputs import run_fresh

BACKEND = "probe-comparison-scripted"
TASK = "arc_challenge_local"
LIMIT = 12
SEED = 7
RESAMPLES = 5000  # 2^12 = 4096 swap patterns: the permutation p-values are exact


class Answers:
    """The task's own prompts and, for every option text of its documents, whether it is the right one."""

    def __init__(self, data_dir: Path) -> None:
        spec = TaskCatalog(task_dirs(), data_dir).resolve(TASK)
        task = build_task(spec, LIMIT, None, SEED)
        self.prompts = {str(i.args[0]) for i in task.instances}
        right: dict[str, set[bool]] = {}
        for instance in task.instances:
            right.setdefault(str(instance.args[1]), set()).add(instance.idx == instance.doc["gold"])
        assert all(
            len(v) == 1 for v in right.values()
        )  # no option text is right in one doc, wrong in another
        self.right = {text: flags.pop() for text, flags in right.items()}
        self.docs = len({i.doc_id for i in task.instances})


class Scripted(Backend):
    def __init__(self, behaviour: str, answers: Answers) -> None:
        super().__init__()
        self.behaviour, self.answers = behaviour, answers

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            right = self.answers.right[continuation]
            if self.behaviour == "brittle" and context not in self.answers.prompts:
                right = not right
            out.append((-1.0 if right else -5.0, False))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError

    def describe(self) -> ModelInfo:
        return ModelInfo("unknown", "scripted", 0, 0, "n/a", "none", 0, "0" * 32, "none")

    def telemetry(self) -> Telemetry:
        return Telemetry(0, "none", 0, 0.0, 0, 0.0)


@pytest.fixture(scope="module")
def backend(data_dir: Path) -> Iterator[str]:
    answers = Answers(data_dir)

    def load(config: ModelConfig, context: LoadContext) -> Scripted:
        return Scripted(str(config.path).rsplit("/", 1)[-1], answers)

    BACKENDS.register(BACKEND)(load)
    try:
        yield BACKEND
    finally:
        BACKENDS._items.pop(BACKEND)  # the registry has no public way to forget a backend


def model(name: str, behaviour: str, baseline: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "backend": BACKEND, "path": f"scripted/{behaviour}"}
    return entry if baseline is None else {**entry, "baseline": baseline}


def gate(variant: str, **limit: float) -> dict[str, Any]:
    rule = {"kind": "probe_change", "name": f"{variant} typo", "probe": "typo", "metric": "pdr"}
    return {**rule, "variants": [variant], **(limit or {"max_increase": 0.05})}


def write(folder: Path, name: str, document: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(backend: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe-comparisons")
    config = {
        "run": {"name": "typo", "output_dir": str(folder / "out"), "data_dir": str(data_dir), "seed": SEED},
        "stats": {"resamples": RESAMPLES, "interval_resamples": 200},
        "models": [
            model("base", "steady"),
            model("int8", "brittle", "base"),
            model("twin", "steady", "base"),
        ],
        "tasks": [{"name": TASK, "limit": LIMIT}],
        "probes": [{"kind": "typo", "tasks": [TASK], "severity": "high", "seeds": 2}],
        "gates": {"rules": [gate("twin")]},
    }
    path = write(folder, "typo", config)
    assert cli.main(["run", str(path), "--cache-dir", str(folder / "cache")]) == 0  # the twin's gate passes
    return folder / "out" / "typo"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> Results:
    return Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))


def by_pair(results: Results, variant: str) -> dict[str, Any]:
    return {c.metric: c for c in results.probe_comparisons if c.variant == variant}


def test_every_copy_was_changed_so_the_brittle_model_misses_every_one(results: Results) -> None:
    units = {(r.model, r.task): r for r in results.results}
    for name in ("base", "int8", "twin"):
        metrics = units[(name, f"typo/{TASK}")].metrics
        assert metrics["changed"].value == 1.0 and metrics["clean"].value == 1.0
    assert units[("int8", f"typo/{TASK}")].metrics["pdr"].value == 1.0
    assert units[("base", f"typo/{TASK}")].metrics["pdr"].value == 0.0


def test_a_brittle_variant_is_compared_worse_on_every_metric(results: Results) -> None:
    compared = by_pair(results, "int8")
    assert set(compared) == {"pdr", "perturbed", "flip_rate"}
    expected = {"pdr": (0.0, 1.0), "perturbed": (1.0, 0.0), "flip_rate": (0.0, 1.0)}
    for metric, (base, variant) in expected.items():
        c = compared[metric]
        assert (c.unit, c.probe, c.kind, c.task) == (f"typo/{TASK}", "typo", "typo", TASK)
        assert (c.baseline, c.n) == ("base", LIMIT)
        assert (c.baseline_value, c.variant_value, c.difference) == (base, variant, variant - base)
        # every sample moves the same way, so every resample gives the same difference
        assert (c.ci_low, c.ci_high, c.lower_bound, c.upper_bound) == (variant - base,) * 4
        assert c.p_value == 2 / 4096  # exact: only "no swap" and "swap all" are as extreme
        assert c.p_holm == 6 * 2 / 4096 and c.p_adjusted == c.p_holm
        assert c.reading == "variant worse"


def test_a_variant_like_its_base_differs_in_nothing(results: Results) -> None:
    for c in by_pair(results, "twin").values():
        assert (c.difference, c.ci_low, c.ci_high, c.p_value, c.p_holm) == (0.0, 0.0, 0.0, 1.0, 1.0)
        assert c.reading == "not significant"


def test_probe_comparisons_are_a_family_apart_from_the_task_comparisons(results: Results) -> None:
    assert {c.family for c in results.probe_comparisons} == {
        "6 probe comparisons: every (baseline, variant) pair x probe unit x compared metric; "
        "a family apart from the task comparisons"
    }
    assert len(results.comparisons) == 2  # int8 and twin on the task itself; the probe adds none
    assert all(c.family.startswith("2 comparisons:") for c in results.comparisons)
    assert results.skipped_probe_comparisons == []


def test_the_gate_passes_the_robust_variant(results: Results) -> None:
    assert results.gates is not None and results.gates.passed
    (check,) = results.gates.checks
    assert check.status == "pass" and check.target == f"twin vs base on typo/{TASK} (pdr)"
    assert (
        check.reason == "pdr 0.0000 -> 0.0000, increase +0.0000: one-sided 95% bound +0.0000 is within 0.05"
    )


def test_the_gate_fails_the_brittle_variant(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write(tmp_path, "policy", {"rules": [gate("int8")]})
    assert cli.main(["gate", str(run_dir), "--policy", str(policy)]) == 1
    verdict = Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8")).gates
    assert verdict is not None and not verdict.passed
    (check,) = verdict.checks
    assert (check.status, check.target) == ("fail", f"int8 vs base on typo/{TASK} (pdr)")
    assert check.reason == (
        "pdr 0.0000 -> 1.0000, increase +1.0000: the whole 95% CI [+1.0000, +1.0000] lies above 0.05"
    )
    assert "fail" in capsys.readouterr().out
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert "int8 vs base on typo/arc_challenge_local (pdr)" in junit
    assert cli.main(["gate", str(run_dir)]) == 0  # the run's own policy again


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (gate("int8", max_increase=1.5), "pass"),  # a limit above the whole change passes
        (gate("int8", max_increase=0.5) | {"judge_on": "value"}, "fail"),
        (gate("int8") | {"metric": "perturbed", "max_decrease": 0.05, "max_increase": None}, "fail"),
        (gate("int8") | {"metric": "perturbed", "max_decrease": 1.0, "max_increase": None}, "pass"),
    ],
)
def test_limits_and_directions(run_dir: Path, tmp_path: Path, rule: dict[str, Any], message: str) -> None:
    rule = {k: v for k, v in rule.items() if v is not None}
    policy = write(tmp_path, "policy", {"rules": [rule]})
    assert cli.main(["gate", str(run_dir), "--policy", str(policy)]) == (0 if message == "pass" else 1)
    verdict = Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8")).gates
    assert verdict is not None and [c.status for c in verdict.checks] == [message]


def test_compare_recomputes_the_probe_comparisons_from_the_records(
    run_dir: Path, results: Results, tmp_path: Path
) -> None:
    out = tmp_path / "compared"
    assert cli.main(["compare", str(run_dir), "--output", str(out)]) == 0
    again = Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))
    assert again.probe_comparisons == results.probe_comparisons


def test_gate_and_compare_of_a_run_with_probes_import_no_model_library(run_dir: Path) -> None:
    assert run_fresh("gate", str(run_dir)) == (0, [])
    assert run_fresh("compare", str(run_dir)) == (0, [])


def test_the_report_shows_the_comparisons(run_dir: Path) -> None:
    from lxml import html

    page = html.fromstring((run_dir / "report.html").read_text(encoding="utf-8"))
    (table,) = page.xpath('//table[@id="probe-comparisons-robustness"]')
    rows = table.xpath('.//tr[@class="probe-comparison"]')
    assert len(rows) == 6
    cells = [" ".join(td.text_content().split()) for td in rows[0].xpath("./td")]
    assert cells[:2] == ["int8 vs base", f"typo/{TASK} · pdr"]
    assert cells[3:] == [
        "0.0000 → 1.0000",
        "+1.0000 [+1.0000, +1.0000]",
        "0.0005 (0.0029 holm)",
        "variant worse",
    ]
    summary = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert "## Variant vs base on probes" in summary


def test_a_results_file_written_before_probe_comparisons_still_loads(results: Results) -> None:
    data = json.loads(results.model_dump_json(by_alias=True))
    del data["probe_comparisons"], data["skipped_probe_comparisons"]
    old = Results.model_validate(data)
    assert old.probe_comparisons == [] and old.skipped_probe_comparisons == []


# --- a hallucination probe: a variant that answers questions about made-up entities ---

FABRICATED = 10  # made-up entities, and as many controls


@pytest.fixture(scope="module")
def fabricated_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fabricated-comparisons")
    config = {
        "run": {
            "name": "made-up",
            "output_dir": str(folder / "out"),
            "data_dir": str(data_dir),
            "seed": SEED,
        },
        "stats": {"resamples": 2000, "interval_resamples": 200},  # 2^10 patterns: exact p-values
        "models": [scripted.model("oracle"), {**scripted.model("wrong"), "baseline": "oracle"}],
        "probes": [{"kind": "fabricated", "limit": FABRICATED, "embedding": False}],
        "gates": {
            "rules": [
                {
                    "kind": "probe_change",
                    "probe": "fabricated",
                    "metric": "hallucination_rate",
                    "max_increase": 0.1,
                }
            ]
        },
    }
    scripted.register(data_dir)
    try:
        assert (
            cli.main(["run", str(write(folder, "made-up", config)), "--cache-dir", str(folder / "cache")])
            == 1
        )
    finally:
        scripted.unregister()
    return folder / "out" / "made-up"


def test_a_variant_that_hallucinates_fails_the_gate_on_its_hallucination_rate(fabricated_run: Path) -> None:
    results = Results.model_validate_json((fabricated_run / "results.json").read_text(encoding="utf-8"))
    compared = {c.metric: c for c in results.probe_comparisons}
    expected = {  # oracle abstains on every made-up entity and answers every control; "wrong" the opposite
        "hallucination_rate": (0.0, 1.0),
        "abstention_rate": (1.0, 0.0),
        "control_accuracy": (1.0, 0.0),
        "control_abstention_rate": (0.0, 0.0),
    }
    assert {m: (c.baseline_value, c.variant_value) for m, c in compared.items()} == expected
    rate = compared["hallucination_rate"]
    assert (rate.n, rate.task, rate.ci_low, rate.ci_high, rate.p_value) == (
        FABRICATED,
        "",
        1.0,
        1.0,
        2 / 2**10,
    )
    assert (
        rate.reading == "variant worse" and compared["control_abstention_rate"].reading == "not significant"
    )
    assert results.gates is not None
    (check,) = results.gates.checks
    assert (check.status, check.target) == ("fail", "wrong vs oracle on fabricated (hallucination_rate)")
    assert check.reason.endswith("the whole 95% CI [+1.0000, +1.0000] lies above 0.1")
