"""Comparisons from records: scripted (replay) models with known flips give known statistics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from statsmodels.stats.contingency_tables import mcnemar

from evalsuite import cli
from evalsuite.compare import parse_pair
from evalsuite.errors import ConfigError
from evalsuite.records import Comparison, Results
from evalsuite.stats.paired import Discordance, score_interval
from evalsuite.tasks import TaskCatalog, build_task, task_dirs

DOCS = 40  # quickstart_mc has 40 questions


def replay_rows(
    data_dir: Path, correct: set[int], task: str = "quickstart_mc", limit: int | None = None
) -> list[dict[str, Any]]:
    """Answers that pick the gold choice exactly on the documents in ``correct`` (a request that two
    documents share is answered as the first of them has it)."""
    spec = TaskCatalog(task_dirs(), data_dir).resolve(task)
    prepared = build_task(spec, limit=limit, num_fewshot=None, seed=1)
    rows = []
    seen = set()
    for instance in prepared.instances:
        gold = prepared.task.doc_to_target(instance.doc)
        wins = (instance.idx == gold) == (instance.doc_id in correct)
        context, continuation = instance.args
        if (context, continuation) in seen:
            continue
        seen.add((context, continuation))
        rows.append(
            {
                "request_type": "loglikelihood",
                "context": context,
                "continuation": continuation,
                "logprob": -1.0 - 0.01 * instance.idx if wins else -5.0 - 0.01 * instance.idx,
            }
        )
    return rows


def scripted_run(
    folder: Path,
    data_dir: Path,
    models: dict[str, set[int]],
    name: str = "scripted",
    expect: int = 0,
    gates: dict[str, Any] | None = None,
    noise: Sequence[str] = (),
    tasks: Sequence[Any] = ("quickstart_mc",),
    **stats: Any,
) -> Path:
    """A run of replay models (``base`` the baseline of the others; those in ``noise`` noise floors)."""
    entries = []
    for model, correct in models.items():
        path = folder / f"{model}.jsonl"
        path.write_text(
            "".join(json.dumps(r) + "\n" for r in replay_rows(data_dir, correct)), encoding="utf-8"
        )
        entry = {"name": model, "backend": "replay", "path": str(path)}
        if model != "base":
            entry["baseline"] = "base"
        if model in noise:
            entry["noise_floor"] = True
        entries.append(entry)
    config = {
        "run": {"name": name, "output_dir": str(folder / "out"), "data_dir": str(data_dir)},
        "stats": {"resamples": 2000, **stats},
        "models": entries,
        "tasks": list(tasks),
    }
    if gates is not None:
        config["gates"] = gates
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(folder / f"{name}.yaml")]) == expect
    return folder / "out" / name


BASE = set(range(0, 30))  # 30 of 40 right
WORSE = set(range(0, 22)) | {35}  # loses 8 of the base's, gains 1: b = 8, c = 1
SAME = set(BASE)


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    return scripted_run(folder, data_dir, {"base": BASE, "worse": WORSE, "same": SAME})


def comparisons(path: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((path / "results.json").read_text(encoding="utf-8"))
    return {c["variant"]: c for c in results["comparisons"]}


def test_binary_comparison_matches_the_scripted_flips(run_dir: Path) -> None:
    worse = comparisons(run_dir)["worse"]
    assert worse["n"] == DOCS and worse["metric"] == "acc"
    assert worse["discordant"] == {"both": 22, "baseline_only": 8, "variant_only": 1, "neither": 9}
    assert worse["difference"] == pytest.approx((1 - 8) / DOCS)
    assert worse["baseline_value"] == pytest.approx(30 / DOCS) and worse["variant_value"] == pytest.approx(
        23 / DOCS
    )
    # mid-p McNemar by hand: b = 8, c = 1, 2 (P(X < 1) + P(X = 1) / 2) for X ~ Binomial(9, 1/2)
    assert worse["p_value"] == pytest.approx(22 / 1024, abs=1e-12)
    assert worse["method"].startswith("mid-p McNemar")
    assert worse["clusters"] is None
    assert worse["flip_rate"] == pytest.approx(9 / DOCS) and worse["agreement"] == pytest.approx(31 / DOCS)
    assert worse["ci_low"] < worse["difference"] < worse["ci_high"] < 0
    assert worse["non_inferiority"]["non_inferior"] is False
    assert worse["shift"]["top1_agreement"] == pytest.approx(31 / DOCS)
    assert worse["shift"]["choice_kl"] > 0


def test_the_exact_mcnemar_test_on_request(data_dir: Path, tmp_path: Path) -> None:
    run = scripted_run(tmp_path, data_dir, {"base": BASE, "worse": WORSE}, mcnemar="exact")
    worse = comparisons(run)["worse"]
    assert worse["p_value"] == pytest.approx(mcnemar([[22, 8], [1, 9]], exact=True).pvalue, abs=1e-12)
    assert worse["method"].startswith("exact McNemar")
    assert worse["ci_low"] < worse["difference"] < worse["ci_high"]  # p = 0.039: the interval excludes 0
    assert worse["ci_high"] < 0


def test_a_clustered_task_is_compared_with_a_cluster_robust_paired_test(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import statsmodels.api as sm

    tasks = [{"name": "quickstart_mc", "cluster_by": "answer"}]  # 4 clusters: the right option's place
    run = scripted_run(tmp_path, data_dir, {"base": BASE, "worse": WORSE}, tasks=tasks)
    worse = comparisons(run)["worse"]
    rows = Path(__file__).parents[1] / "tasks" / "quickstart" / "mc.jsonl"
    answers = [json.loads(line)["answer"] for line in rows.read_text(encoding="utf-8").splitlines()]
    differences = np.array([(i in WORSE) - (i in BASE) for i in range(DOCS)], dtype=float)
    fitted = sm.OLS(differences, np.ones((DOCS, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": np.array(answers)}, use_t=True
    )
    assert worse["clusters"] == 4 and worse["cluster_by"] == "answer"
    assert worse["method"].startswith("cluster-robust paired t")
    # never bolder than McNemar's: the larger p (mid-p 22/1024 here) and intervals spanning both
    table = Discordance(both=22, baseline_only=8, variant_only=1, neither=9)
    assert worse["p_value"] == pytest.approx(max(float(fitted.pvalues[0]), 22 / 1024), rel=1e-9)
    assert float(fitted.pvalues[0]) < 22 / 1024  # here McNemar's is the larger: it decides
    score = score_interval(table, 0.95, 22 / 1024)
    ols_low, ols_high = fitted.conf_int(0.05)[0]
    assert worse["ci_low"] == pytest.approx(min(ols_low, score[0]), rel=1e-9)
    assert worse["ci_high"] == pytest.approx(max(ols_high, score[1]), rel=1e-9)
    low = min(fitted.conf_int(0.10)[0][0], score_interval(table, 0.90, 22 / 1024)[0])
    assert worse["non_inferiority"]["lower_bound"] == pytest.approx(low, rel=1e-9)
    assert worse["discordant"]["baseline_only"] == 8  # the counts are still recorded
    # power counts the 40 pairs as 40 / design effect independent ones
    plain = float(np.std(differences, ddof=1)) / np.sqrt(DOCS)
    design = (float(fitted.bse[0]) / plain) ** 2
    assert worse["design_effect"] == pytest.approx(max(1.0, design), rel=1e-9)
    from evalsuite.compare import remargin
    from evalsuite.stats.power import mcnemar_power

    worth = int(DOCS / worse["design_effect"])
    assert worse["power"]["power_at_effect"] == pytest.approx(mcnemar_power(0.02, worth, 9 / DOCS, 0.05))
    built = Comparison.model_validate(worse)
    assert remargin(built, 0.02, "stats.margin").power == built.power
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tasks"]["quickstart_mc"]["cluster_by"] == "answer"
    # recomputed from the records alone, the comparison is the same
    assert cli.main(["compare", str(run)]) == 0
    capsys.readouterr()
    again = comparisons(run)["worse"]
    assert (again["p_value"], again["ci_low"], again["clusters"]) == (
        worse["p_value"],
        worse["ci_low"],
        worse["clusters"],
    )


def test_identical_models_show_no_difference(run_dir: Path) -> None:
    same = comparisons(run_dir)["same"]
    assert same["discordant"]["baseline_only"] == same["discordant"]["variant_only"] == 0
    assert same["p_value"] == 1.0 and same["difference"] == 0.0
    assert same["shift"]["choice_kl"] == pytest.approx(0.0, abs=1e-12)
    # 40 questions cannot show non-inferiority within 2 points, and the reading says why
    assert same["non_inferiority"]["non_inferior"] is False
    assert same["power"]["underpowered"] is True and same["reading"] == "underpowered"
    assert same["power"]["n_needed"] > DOCS


def test_p_values_are_adjusted_over_the_run(run_dir: Path) -> None:
    found = comparisons(run_dir)
    raw = sorted(c["p_value"] for c in found.values())
    holm = sorted(c["p_holm"] for c in found.values())
    assert holm == [min(1.0, raw[0] * 2), max(min(1.0, raw[0] * 2), raw[1])]
    assert all(c["family"].startswith("2 comparisons") for c in found.values())
    assert all(c["p_adjusted"] == c["p_holm"] for c in found.values())


def test_compare_command_reproduces_the_run_and_honours_overrides(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (run_dir / "results.json").read_text(encoding="utf-8")
    assert cli.main(["compare", str(run_dir)]) == 0
    assert (run_dir / "results.json").read_text(encoding="utf-8") == before
    assert "paired comparisons" in capsys.readouterr().out
    assert (
        cli.main(["compare", str(run_dir), "--adjust", "bh", "--margin", "0.5", "--pair", "worse:same"]) == 0
    )
    found = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["comparisons"]
    assert {(c["baseline"], c["variant"]) for c in found} == {
        ("base", "worse"),
        ("base", "same"),
        ("worse", "same"),
    }
    assert all(c["adjustment"] == "bh" and c["p_adjusted"] == c["p_bh"] for c in found)
    same = next(c for c in found if c["variant"] == "same" and c["baseline"] == "base")
    assert same["non_inferiority"]["margin"] == 0.5 and same["non_inferiority"]["non_inferior"] is True
    assert same["non_inferiority"]["source"] == "compare --margin"  # where the margin comes from
    (run_dir / "results.json").write_text(before, encoding="utf-8")


def test_compare_across_runs_qualifies_colliding_names(
    run_dir: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = scripted_run(tmp_path, data_dir, {"base": WORSE, "fresh": SAME}, name="other")
    out = tmp_path / "joint"
    argv = ["compare", str(run_dir), str(other), "--pair", "scripted:base:other:base", "--output", str(out)]
    assert cli.main(argv) == 0
    found = json.loads((out / "results.json").read_text(encoding="utf-8"))
    pairs = {(c["baseline"], c["variant"]) for c in found["comparisons"]}
    assert ("scripted:base", "other:base") in pairs and ("other:base", "fresh") in pairs
    cross = next(c for c in found["comparisons"] if c["variant"] == "other:base")
    assert cross["discordant"]["baseline_only"] == 8 and cross["discordant"]["variant_only"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "/nonexistent/run"], "no such run directory"),
        (["compare", "{run}", "--pair", "base:wrose"], "no model named 'wrose' (did you mean 'worse'?)"),
        (["compare", "{run}", "--pair", "base"], "expected BASELINE:VARIANT"),
        (["compare", "{run}", "--alpha", "0.7"], "alpha"),
    ],
)
def test_compare_input_errors_exit_2(
    argv: list[str], message: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([a.format(run=run_dir) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_directory_that_is_not_a_run_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", str(tmp_path)]) == 2
    assert "not a run directory (no manifest.json)" in capsys.readouterr().err


def test_pair_parsing() -> None:
    names = ["a", "b", "r1:a", "r2:a"]
    assert parse_pair("a:b", names) == ("a", "b")
    assert parse_pair("r1:a:r2:a", names) == ("r1:a", "r2:a")
    assert parse_pair("r1:a:b", names) == ("r1:a", "b")
    with pytest.raises(ConfigError, match="no model named 'c'"):
        parse_pair("a:c", names)


def test_a_damaged_run_directory_is_named(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "damaged"
    shutil.copytree(run_dir, copy)
    results = json.loads((copy / "results.json").read_text(encoding="utf-8"))
    results["comparisons"][0]["n"] = "many"
    (copy / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert cli.main(["compare", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "results.json: comparisons[0].n: Input should be a valid integer" in err and err.count("\n") == 1


def test_remargin_is_the_comparison_built_at_that_margin(run_dir: Path) -> None:
    """Re-gating moves a comparison to another margin from its record alone: the same verdict, power and
    reading as building it at that margin from the samples."""
    from dataclasses import replace

    from evalsuite.compare import build_comparisons, plan_for, remargin
    from evalsuite.rundir import load_run

    run = load_run(run_dir)
    stats = run.config.stats.model_copy(update={"margin": 0.3, "equivalence_margin": 0.02})  # as it was
    plan = plan_for(run.config.model_copy(update={"stats": stats}), run.results.results)
    wide, _ = build_comparisons(plan, run.results.results, run.samples, run.config.run.seed)
    assert [remargin(c, 0.3, "stats.margin") for c in run.results.comparisons] == wide
    assert {c.non_inferiority.source for c in run.results.comparisons} == {"stats.margin"}
    with_effect = replace(plan, settings=stats.model_copy(update={"effect": 0.1}))
    fixed, _ = build_comparisons(with_effect, run.results.results, run.samples, run.config.run.seed)
    assert [remargin(c, 0.3, "stats.margin", effect=0.1) for c in run.results.comparisons] == fixed


def test_remargin_of_a_mean_comparison() -> None:
    """Continuous scores: power at the new margin from the standard deviation the record implies."""
    import numpy as np

    from evalsuite.compare import Plan, TaskPolicy, build_comparisons, remargin
    from evalsuite.config import StatsSettings
    from evalsuite.records import MetricResult, SampleRecord, TaskResult

    rng = np.random.default_rng(7)
    base = rng.normal(0.6, 0.2, 60)
    scores = {"a": base, "b": base + rng.normal(-0.02, 0.1, 60)}
    samples = [
        SampleRecord(model=m, task="t", doc_id=i, prompt=f"p{i}", metrics={"score": float(v)})
        for m, values in scores.items()
        for i, v in enumerate(values)
    ]
    metric = MetricResult(value=0.6, stderr=None, n=60, n_errors=0, higher_is_better=True, aggregation="mean")
    results = [
        TaskResult(model=m, task="t", output_type="x", num_fewshot=0, metrics={"score": metric})
        for m in scores
    ]
    settings = StatsSettings(resamples=200)

    def built(margin: float) -> Comparison:
        policy = TaskPolicy(metric="score", margin=margin, equivalence_margin=0.05, alpha=0.05)
        plan = Plan(pairs=(("a", "b"),), policies={"t": policy}, settings=settings)
        return build_comparisons(plan, results, samples, seed=1)[0][0]

    narrow, wide = built(0.01), built(0.2)
    moved = remargin(narrow, 0.2, "stats.margin")
    assert moved.non_inferiority == wide.non_inferiority and moved.reading == wide.reading
    assert moved.power.n_needed == wide.power.n_needed and moved.power.mde == pytest.approx(wide.power.mde)
    assert moved.power.power_at_effect == pytest.approx(wide.power.power_at_effect)
    assert moved.model_copy(update={"power": wide.power}) == wide


def test_compare_with_a_new_margin_regates_so_the_verdict_agrees_with_the_comparisons(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare --margin` on a run whose non-inferiority gate takes the configured margin: the stored
    verdict was reached on the old comparisons, and must follow the new ones."""
    gate = {"rules": [{"kind": "non_inferiority", "name": "no worse"}]}
    run = scripted_run(
        tmp_path, data_dir, {"base": BASE, "worse": WORSE}, name="regated", expect=1, gates=gate
    )
    assert cli.main(["compare", str(run), "--margin", "0.5"]) == 0
    results = Results.model_validate_json((run / "results.json").read_text(encoding="utf-8"))
    (comparison,) = results.comparisons
    assert comparison.non_inferiority.margin == 0.5 and comparison.non_inferiority.non_inferior
    assert results.gates is not None and results.gates.passed  # judged at 0.5 too, as shown
    assert cli.main(["gate", str(run)]) == 0
    capsys.readouterr()
