"""`evalsuite run` with probes, end to end: a real tiny model, scripted (replay) models with known answers,
threshold gates on probe metrics, and configs refused before any model loads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.records import read_samples
from evalsuite.tasks import TaskCatalog, build_task, task_dirs
from tests.conftest import STORIES

PAIRED_METRICS = ("pdr", "clean", "perturbed", "drop", "flip_rate", "worst_case", "changed")

LIMIT = 4
FORMATS = 3
SEED = 7
UNITS = {
    "option_order/mmlu_local": {*PAIRED_METRICS, "rstd", "consistency"},
    "prompt_format/mmlu_local": {"spread", "mean", "best", "worst"},
    "prompt_format/arc_challenge_local": {"spread", "mean", "best", "worst"},
    "prompt_format/boolq_local": {"spread", "mean", "best", "worst"},
}
VARIANTS = {
    "option_order/mmlu_local": ["clean", "rotation-1", "rotation-2", "rotation-3"],
    **{name: [f"format-{j}" for j in range(FORMATS)] for name in UNITS if name.startswith("prompt_format")},
}


def write_config(folder: Path, name: str, body: dict[str, Any], data_dir: Path) -> Path:
    config = {
        "run": {"name": name, "output_dir": str(folder / "out"), "data_dir": str(data_dir), "seed": SEED},
        "stats": {"resamples": 500, "interval_resamples": 500},
        **body,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def results_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def by_unit(results: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    return {r["task"]: r for r in results["results"] if r["model"] == model}


# --- the real tiny model ---

PROBES = [
    {"kind": "option_order", "tasks": ["mmlu_local"]},
    {
        "kind": "prompt_format",
        "tasks": ["mmlu_local", "arc_challenge_local", "boolq_local"],
        "limit": LIMIT,
        "formats": FORMATS,
    },
]
GATES = {
    "rules": [
        {
            "kind": "threshold",
            "name": "answers-agree",
            "task": "option_order/mmlu_local",
            "metric": "consistency",
            "min": 0.0,
            "judge_on": "value",
        },
        {
            "kind": "threshold",
            "name": "format-spread",
            "task": "prompt_format/arc_challenge_local",
            "max": 1.0,
        },
    ]
}


@pytest.fixture(scope="module")
def stories_run(stories: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("probe-run")
    body = {
        "models": [{"name": "stories", "path": str(stories)}],
        "tasks": [{"name": "mmlu_local", "limit": LIMIT}],  # the option-order probe takes its limit from here
        "probes": PROBES,
        "gates": GATES,
    }
    config = write_config(folder, "probes", body, data_dir)
    assert cli.main(["run", str(config), "--cache-dir", str(folder / "cache")]) == 0
    return folder / "out" / "probes"


def test_every_probe_unit_has_its_metrics_with_intervals(stories_run: Path) -> None:
    units = by_unit(results_of(stories_run), "stories")
    assert set(units) == {"mmlu_local", *UNITS}
    for name, metrics in UNITS.items():
        result = units[name]
        assert set(result["metrics"]) == metrics, name
        for metric_name, metric in result["metrics"].items():
            if metric["value"] is None:  # pdr has no value when no clean answer is right
                assert metric_name == "pdr" and units[name]["metrics"]["clean"]["value"] == 0
                continue
            assert metric["ci_low"] is not None and metric["ci_high"] is not None, (name, metric_name)
            assert metric["ci_low"] <= metric["ci_high"]
            assert metric["n_errors"] == 0
        probe = result["probe"]
        assert (probe["probe"], probe["task"], probe["samples"]) == (*name.split("/"), LIMIT)
    assert units["option_order/mmlu_local"]["primary_metric"] == "consistency"
    assert units["option_order/mmlu_local"]["metrics"]["perturbed"]["clusters"] == LIMIT
    assert units["option_order/mmlu_local"]["probe"]["mcnemar"] is not None
    formats = units["prompt_format/boolq_local"]["probe"]
    assert len(formats["formats"]) == FORMATS and formats["settings"] == {"formats": FORMATS}


def test_samples_hold_one_record_per_variant(stories_run: Path) -> None:
    records = list(read_samples(stories_run / "samples.jsonl"))
    for name, variants in VARIANTS.items():
        mine = [r for r in records if r.task == name]
        assert sorted((r.doc_id, r.variant) for r in mine) == sorted(
            (d, v) for d in range(LIMIT) for v in variants
        ), name
        for record in mine:
            assert record.probe is not None and record.error is None
            assert record.probe.task == name.split("/")[1]
            assert record.probe.original and record.probe.perturbed
            assert record.probe.score == record.metrics["acc"]
            if record.variant == "clean":
                assert record.probe.perturbed == record.probe.original
            else:
                assert record.probe.perturbed != record.probe.original
                assert record.prompt.endswith(record.probe.perturbed)


def test_clean_copies_reuse_the_task_answers(stories_run: Path) -> None:
    records = list(read_samples(stories_run / "samples.jsonl"))
    task = {r.doc_id: r for r in records if r.task == "mmlu_local"}
    clean = {r.doc_id: r for r in records if r.task == "option_order/mmlu_local" and r.variant == "clean"}
    assert set(task) == set(clean) == set(range(LIMIT))
    for doc_id, record in clean.items():
        assert record.prompt == task[doc_id].prompt
        assert record.choices == task[doc_id].choices
        assert record.metrics["acc"] == task[doc_id].metrics["acc"]


def test_manifest_lists_the_probe_units(stories_run: Path) -> None:
    manifest = json.loads((stories_run / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["probes"]) == set(UNITS)
    assert manifest["probes"]["option_order/mmlu_local"]["variants"] == LIMIT * 4
    assert manifest["probes"]["prompt_format/arc_challenge_local"]["samples"] == LIMIT


def test_gates_on_probe_metrics_are_applied(stories_run: Path) -> None:
    verdict = results_of(stories_run)["gates"]
    assert verdict["passed"] is True
    checks = {(c["gate"], c["target"], c["status"]) for c in verdict["checks"]}
    assert checks == {
        ("answers-agree", "stories on option_order/mmlu_local (consistency)", "pass"),
        ("format-spread", "stories on prompt_format/arc_challenge_local (spread)", "pass"),
    }


# --- configs refused while planning: exit 2, nothing written, no model loaded ---

HUB_MODEL = [{"name": "m", "path": str(STORIES)}]  # never loaded: every config here fails while planning


@pytest.mark.parametrize(
    ("probes", "gates", "message"),
    [
        (
            [{"kind": "option_order", "tasks": ["mmlu_local"], "limit": 2}],
            {
                "rules": [
                    {"kind": "threshold", "task": "option_order/mmlu_local", "metric": "spread", "min": 0}
                ]
            },
            "task 'option_order/mmlu_local' has no metric 'spread'",
        ),
        (
            [{"kind": "option_order", "tasks": ["mmlu_local"], "limit": 2}],
            {
                "rules": [
                    {
                        "kind": "threshold",
                        "task": "option_order/mmlu_local",
                        "metric": "constistency",
                        "min": 0,
                    }
                ]
            },
            "did you mean 'consistency'",
        ),
        (
            [{"kind": "option_order", "tasks": ["mmlu_local"], "limit": 2}],
            {"rules": [{"kind": "threshold", "task": "option_order/mmlu", "min": 0}]},
            "the run has no task 'option_order/mmlu'",
        ),
        (
            [{"kind": "option_order", "tasks": ["arc_challenge_local"], "limit": 2}],
            None,
            "does not list them in the prompt",
        ),
        (
            [{"kind": "prompt_format", "tasks": ["wikitext2_local"], "limit": 1}],
            None,
            "is a loglikelihood_rolling task",
        ),
        (
            [{"kind": "prompt_format", "tasks": ["mmlu_local"], "seeds": 5}],
            None,
            "'seeds' does not apply to kind 'prompt_format'",
        ),
    ],
)
def test_bad_probe_configs_stop_before_any_model_loads(
    tmp_path: Path,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    probes: list[dict[str, Any]],
    gates: dict[str, Any] | None,
    message: str,
) -> None:
    body: dict[str, Any] = {"models": HUB_MODEL, "probes": probes}
    if gates is not None:
        body["gates"] = gates
    path = write_config(tmp_path, "bad", body, data_dir)
    assert cli.main(["run", str(path), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert message in err
    assert not (tmp_path / "out").exists()


# --- a scripted model: the replay backend answers every copy ---

SHIFTS = (0, 1, 2, 3)  # rotation 0 is the clean copy


def mmlu_prompts(data_dir: Path) -> list[tuple[str, int, int]]:
    """(prompt, rotation, gold position) for every copy the option-order probe asks, built here from the
    task's own prompts by rotating the listed options (independently of the probe's code)."""
    spec = TaskCatalog(task_dirs(), data_dir).resolve("mmlu_local")
    task = build_task(spec, LIMIT, None, SEED)
    out = []
    for instance in (i for i in task.instances if i.idx == 0):
        doc, prompt = instance.doc, instance.args[0]
        choices = list(doc["choices"])
        listing = "".join(f"\n{letter}. {c}" for letter, c in zip("ABCD", choices, strict=True)) + "\nAnswer:"
        assert prompt.endswith(listing)
        for shift in SHIFTS:
            rotated = choices[shift:] + choices[:shift]
            tail = (
                "".join(f"\n{letter}. {c}" for letter, c in zip("ABCD", rotated, strict=True)) + "\nAnswer:"
            )
            out.append((prompt[: -len(listing)] + tail, shift, (doc["answer"] - shift) % 4))
    return out


def replay_file(path: Path, prompts: list[tuple[str, int, int]], right: bool) -> Path:
    """Always answer A (``right`` false) or always the right option: that letter gets log-prob -1."""
    rows = []
    for prompt, _, gold in prompts:
        chosen = gold if right else 0
        for position, letter in enumerate("ABCD"):
            logprob = -1.0 if position == chosen else -3.0 - position
            row = {"request_type": "loglikelihood", "context": prompt, "continuation": f" {letter}"}
            rows.append({**row, "logprob": logprob})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def replay_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay-probe")
    prompts = mmlu_prompts(data_dir)
    body = {
        "models": [
            {
                "name": "always-a",
                "backend": "replay",
                "path": str(replay_file(folder / "a.jsonl", prompts, False)),
            },
            {
                "name": "oracle",
                "backend": "replay",
                "path": str(replay_file(folder / "o.jsonl", prompts, True)),
            },
        ],
        "probes": [{"kind": "option_order", "tasks": ["mmlu_local"], "limit": LIMIT}],
        "gates": {
            "rules": [
                {
                    "kind": "threshold",
                    "name": "consistent",
                    "task": "option_order/mmlu_local",
                    "metric": "consistency",
                    "min": 0.5,
                    "judge_on": "value",
                }
            ]
        },
    }
    config = write_config(folder, "replay", body, data_dir)
    assert cli.main(["run", str(config), "--cache-dir", str(folder / "cache")]) == 1  # always-a fails
    return folder / "out" / "replay"


def test_replay_golds_are_the_first_mmlu_questions(data_dir: Path) -> None:
    clean_golds = [gold for _, shift, gold in mmlu_prompts(data_dir) if shift == 0]
    assert clean_golds == [1, 2, 3, 1]  # none at A: a model that always answers A is never right when clean


def test_a_model_that_always_answers_a(replay_run: Path) -> None:
    result = by_unit(results_of(replay_run), "always-a")["option_order/mmlu_local"]
    metrics = {name: m["value"] for name, m in result["metrics"].items()}
    assert metrics["consistency"] == 0.0
    assert metrics["rstd"] == pytest.approx(math.sqrt(3) / 4, abs=1e-12)  # std of recalls [1, 0, 0, 0]
    assert metrics["clean"] == 0.0
    assert metrics["perturbed"] == pytest.approx(4 / 12)  # each question right only with its answer at A
    assert metrics["drop"] == pytest.approx(-4 / 12)
    assert metrics["flip_rate"] == 1.0
    assert metrics["worst_case"] == 0.0
    assert metrics["changed"] == 1.0
    assert metrics["pdr"] is None  # no clean answer right: the drop rate is undefined
    assert {m["n_errors"] for m in result["metrics"].values()} == {0}
    # first rotation puts questions 0 and 3 (answer B) at A: 2 gained, 0 lost
    mcnemar = result["probe"]["mcnemar"]
    assert mcnemar["discordant"] == {"both": 0, "baseline_only": 0, "variant_only": 2, "neither": 2}
    assert mcnemar["p_value"] == pytest.approx(0.5)


def test_a_model_that_is_always_right(replay_run: Path) -> None:
    result = by_unit(results_of(replay_run), "oracle")["option_order/mmlu_local"]
    metrics = {name: m["value"] for name, m in result["metrics"].items()}
    assert metrics["consistency"] == 1.0
    assert metrics["rstd"] == 0.0
    assert (metrics["clean"], metrics["perturbed"], metrics["worst_case"]) == (1.0, 1.0, 1.0)
    assert (metrics["pdr"], metrics["drop"], metrics["flip_rate"]) == (0.0, 0.0, 0.0)


def test_replay_records_map_answers_back_to_the_original_order(replay_run: Path) -> None:
    records = [r for r in read_samples(replay_run / "samples.jsonl") if r.model == "always-a"]
    assert len(records) == LIMIT * 4
    for record in records:
        assert record.probe is not None and record.error is None
        shift = int(record.probe.details.get("rotation", 0))
        assert record.probe.answer == shift  # position A shows original option `shift`
        assert record.choices is not None and record.choices[0].loglikelihood == -1.0


def test_the_consistency_gate_fails_the_model_that_always_answers_a(replay_run: Path) -> None:
    verdict = results_of(replay_run)["gates"]
    assert verdict["passed"] is False
    assert {(c["target"], c["status"]) for c in verdict["checks"]} == {
        ("always-a on option_order/mmlu_local (consistency)", "fail"),
        ("oracle on option_order/mmlu_local (consistency)", "pass"),
    }
