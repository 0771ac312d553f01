"""`evalsuite run` end to end: dense, MoE and SSM models plus quantized variants, three kinds of task."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import cli
from evalsuite.records import Results, read_samples

TASKS = [
    {"name": "quickstart_mc", "limit": 6},  # multiple choice
    {"name": "quickstart_qa", "limit": 4},  # generation
    {"name": "wikitext2_local", "limit": 1},  # perplexity
]


def write_config(folder: Path, models: list[dict[str, Any]], data_dir: Path, name: str = "zoo") -> Path:
    config = {
        # its own answer cache: these tests read what the models measured while they ran
        "run": {
            "name": name,
            "output_dir": "out",
            "data_dir": str(data_dir),
            "seed": 7,
            "cache_dir": "cache",
        },
        "models": models,
        "tasks": TASKS,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def zoo_run(
    tiny_model: Callable[[str], Path], data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    models = [
        {"name": "llama", "path": str(tiny_model("llama")), "batch_size": 4},
        {"name": "llama-int8", "variant_of": "llama", "quantization": "torchao-int8-weight-only"},
        {"name": "llama-nf4", "variant_of": "llama", "quantization": "bnb-nf4"},
        {"name": "mixtral", "path": str(tiny_model("mixtral")), "batch_size": 4},
        {"name": "mamba", "path": str(tiny_model("mamba")), "batch_size": 4},
    ]
    for model in models:
        model["generation"] = {"max_new_tokens": 8}
    assert cli.main(["run", str(write_config(folder, models, data_dir))]) == 0
    return folder / "out" / "zoo"


def test_run_directory_has_every_file(zoo_run: Path) -> None:
    assert sorted(p.name for p in zoo_run.iterdir()) == [
        "checksums.sha256",
        "manifest.json",
        "report.html",
        "results.json",
        "samples.jsonl",
        "summary.md",
    ]
    assert not [p for p in zoo_run.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_every_model_and_task_has_records_and_results(zoo_run: Path) -> None:
    records = list(read_samples(zoo_run / "samples.jsonl"))
    models = ["llama", "llama-int8", "llama-nf4", "mixtral", "mamba"]
    expected = {(m, t["name"]): int(t["limit"]) for m in models for t in TASKS}
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        counts[(record.model, record.task)] = counts.get((record.model, record.task), 0) + 1
        assert record.error is None
    assert counts == expected
    results = json.loads((zoo_run / "results.json").read_text())
    assert results["schema"] == "evalsuite.results/1"
    by_unit = {(r["model"], r["task"]): r["metrics"] for r in results["results"]}
    assert set(by_unit) == set(expected)
    for (_, task), metrics in by_unit.items():
        wanted = {
            "quickstart_mc": "acc",
            "quickstart_qa": "exact_match",
            "wikitext2_local": "word_perplexity",
        }
        metric = metrics[wanted[task]]
        assert metric["n"] == expected[("llama", task)] and metric["n_errors"] == 0
        assert metric["value"] is not None


def test_records_hold_what_recomputing_needs(zoo_run: Path) -> None:
    records = {(r.model, r.task, r.doc_id): r for r in read_samples(zoo_run / "samples.jsonl")}
    mc = records[("llama", "quickstart_mc", 0)]
    assert mc.choices is not None and len(mc.choices) == 4
    assert all(c.loglikelihood is not None and c.loglikelihood < 0 for c in mc.choices)
    best = max(range(4), key=lambda i: mc.choices[i].loglikelihood or -1e9)  # type: ignore[index]
    assert mc.metrics["acc"] == float(best == mc.target)
    qa = records[("mamba", "quickstart_qa", 0)]
    assert qa.generation is not None and qa.metrics["exact_match"] in (0, 1)
    ppl = records[("mixtral", "wikitext2_local", 0)]
    assert ppl.loglikelihood is not None and ppl.loglikelihood < 0


def test_manifest_describes_models_versions_and_moe_routing(zoo_run: Path) -> None:
    manifest = json.loads((zoo_run / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["versions"]["lm_eval"] and manifest["hardware"]["cpu_count"]
    models = manifest["models"]
    assert models["llama-int8"]["baseline"] == "llama"
    assert models["llama-nf4"]["info"]["quantization"] == "bnb-nf4"
    assert models["llama-nf4"]["info"]["weight_memory_bytes"] < models["llama"]["info"]["weight_memory_bytes"]
    assert len({m["info"]["fingerprint"] for m in models.values()}) == 5
    assert models["mamba"]["info"]["architecture"] == "ssm"
    mixtral = models["mixtral"]
    assert mixtral["info"]["architecture"] == "moe"
    assert mixtral["info"]["active_parameters"] < mixtral["info"]["parameters"]
    routing = mixtral["telemetry"]["routing"]
    assert routing is not None and len(routing["expert_load"]) == 2 and routing["tokens"] > 0
    for name, model in models.items():
        telemetry = model["telemetry"]
        assert telemetry["tokens_per_second"] > 0, name
        assert telemetry["peak_memory_bytes"] > 0, name
        assert (telemetry["routing"] is None) == (name != "mixtral")
    assert set(manifest["tasks"]) == {t["name"] for t in TASKS}


def test_same_config_and_seed_give_byte_identical_samples(
    zoo_run: Path, tiny_model: Callable[[str], Path], data_dir: Path, tmp_path: Path
) -> None:
    models = [
        {
            "name": "llama",
            "path": str(tiny_model("llama")),
            "batch_size": 4,
            "generation": {"max_new_tokens": 8},
        },
        {
            "name": "mamba",
            "path": str(tiny_model("mamba")),
            "batch_size": 4,
            "generation": {"max_new_tokens": 8},
        },
    ]
    runs = []
    for attempt in ("first", "second"):
        config = write_config(tmp_path, models, data_dir, name=attempt)
        assert cli.main(["run", str(config), "--name", "again"]) == 0
        runs.append((tmp_path / "out" / "again" / "samples.jsonl").read_bytes())
    assert runs[0] == runs[1]
    # and the shared models answered exactly as in the five-model run
    zoo = [line for line in (zoo_run / "samples.jsonl").read_bytes().splitlines(keepends=True)]
    mine = runs[0].splitlines(keepends=True)
    assert [line for line in zoo if b'"model": "llama",' in line] == [
        line for line in mine if b'"model": "llama",' in line
    ]


def test_moe_variants_record_routing_agreement_with_their_base(
    tiny_model: Callable[[str], Path], data_dir: Path, tmp_path: Path
) -> None:
    """Per prompt, the share of (token, layer) places routed to the same experts as the base: exactly 1
    for the same weights at another batch size (each prompt is routed alone), below 1 once bfloat16
    rounding moves router logits; and the same over the prompts of the items that flipped."""
    mixtral = str(tiny_model("mixtral"))
    models = [
        {"name": "base", "path": mixtral, "batch_size": 4},
        {"name": "b1", "variant_of": "base", "batch_size": 1, "noise_floor": True},
        {"name": "bf16", "variant_of": "base", "dtype": "bfloat16"},
    ]
    config = {
        "run": {
            "name": "moe",
            "output_dir": "out",
            "data_dir": str(data_dir),
            "seed": 7,
            "cache_dir": "cache",
        },
        "models": models,
        "tasks": [{"name": "quickstart_mc", "limit": 12}],
        "stats": {"kl_samples": 12, "kl_max_tokens": 32},
    }
    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(path)]) == 0
    run_dir = tmp_path / "out" / "moe"
    results = Results.model_validate_json((run_dir / "results.json").read_text())
    shift = {c.variant: c.shift for c in results.comparisons}
    assert shift["b1"] is not None and shift["bf16"] is not None
    assert shift["b1"].routing_agreement == 1.0 and shift["b1"].routing_items == 12
    assert shift["bf16"].routing_agreement is not None and 0.0 < shift["bf16"].routing_agreement < 1.0
    # the manifest keeps it per prompt, with the (task, document) each prompt belongs to
    manifest = json.loads((run_dir / "manifest.json").read_text())
    per_prompt = manifest["token_shift"]["routing"]["base -> bf16"]
    assert [(task, doc) for task, doc, _ in per_prompt] == [("quickstart_mc", d) for d in range(12)]
    assert sum(value for _, _, value in per_prompt) / 12 == pytest.approx(shift["bf16"].routing_agreement)
    flips = next(c for c in results.comparisons if c.variant == "bf16").discordant
    assert flips is not None
    if flips.baseline_only + flips.variant_only:  # the flipped items' prompts, when any flipped
        assert shift["bf16"].routing_agreement_flipped is not None
    else:
        assert shift["bf16"].routing_agreement_flipped is None


@pytest.mark.parametrize(
    ("stats", "interval_resamples"),
    [
        pytest.param({"resamples": 700, "interval_resamples": 300}, 300, id="set"),
        pytest.param({"resamples": 700}, 2000, id="default"),
        pytest.param({"resamples": 700, "interval_resamples": 2500}, 2500, id="above-the-old-cap"),
    ],
)
def test_task_and_probe_intervals_take_interval_resamples_as_set(
    stats: dict[str, Any],
    interval_resamples: int,
    stories: Path,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every bootstrap behind a task or probe interval draws `stats.interval_resamples` resamples, not
    `stats.resamples` (which paired comparisons keep) and not a number of its own."""
    from evalsuite import compare
    from evalsuite.probes import metrics
    from evalsuite.stats import aggregates

    asked: dict[str, list[int]] = {"task": [], "probe": [], "pdr": [], "comparison": []}

    def recording(module: Any, name: str, kind: str, position: int) -> None:
        original = getattr(module, name)

        def record(*args: Any, **kwargs: Any) -> Any:
            asked[kind].append(args[position].resamples if kind == "pdr" else args[position])
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, record)

    recording(aggregates, "bootstrap_interval", "task", 4)  # (columns, statistic, rng, confidence, resamples)
    recording(metrics, "bootstrap_interval", "probe", 4)
    recording(metrics, "pdr_interval", "pdr", 3)  # (clean, perturbed, rng, settings)
    recording(compare, "paired_ratio_test", "comparison", 5)  # (..., rng, confidence, resamples)
    config = {
        "run": {"name": "draws", "output_dir": "out", "data_dir": str(data_dir), "seed": 7, "cache_dir": "c"},
        "models": [
            {"name": "base", "path": str(stories)},
            {"name": "b2", "variant_of": "base", "batch_size": 2},
        ],
        "tasks": [{"name": "wikitext2_local", "limit": 2}],  # perplexity: a bootstrapped interval
        "probes": [
            {"kind": "option_order", "tasks": ["mmlu_local"], "limit": 4},  # pdr, rstd, consistency
            {"kind": "prompt_format", "tasks": ["arc_challenge_local"], "limit": 3, "formats": 2},  # spread
        ],
        "stats": {**stats, "kl_samples": 0},
    }
    path = tmp_path / "draws.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(path)]) == 0
    assert len(asked["task"]) == 2 * 3  # two models: word and byte perplexity, bits per byte
    assert set(asked["task"]) == {interval_resamples}
    assert len(asked["pdr"]) == 2 and set(asked["pdr"]) == {interval_resamples}
    assert asked["probe"] and set(asked["probe"]) == {interval_resamples}
    assert asked["comparison"] and set(asked["comparison"]) == {700}
    manifest = json.loads((tmp_path / "out" / "draws" / "manifest.json").read_text())
    assert manifest["config"]["stats"]["interval_resamples"] == interval_resamples
