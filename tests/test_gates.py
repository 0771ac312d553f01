"""Gates: verdicts with reasons, exit codes, `evalsuite gate` on finished runs, JUnit XML and summary.md."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from evalsuite import cli
from evalsuite.config import DeprecatedKey, GatePolicy
from evalsuite.errors import ConfigError
from evalsuite.gates import apply_policy, check_references, evaluate, gate_margin, junit_xml, parse_policy
from evalsuite.records import Check, Comparison, Discordant, Results, ShiftResult, Verdict
from tests.test_compare import BASE, SAME, WORSE, scripted_run

FIXTURES = Path(__file__).parent / "fixtures"


def policy(*rules: dict[str, Any], inconclusive: str = "fail") -> GatePolicy:
    return GatePolicy.model_validate({"inconclusive": inconclusive, "rules": list(rules)})


@pytest.fixture(scope="module")
def finished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base 30/40 right; worse 23/40 (8 lost, 1 gained); same as base. No gates declared."""
    folder = tmp_path_factory.mktemp("gates")
    return scripted_run(folder, data_dir, {"base": BASE, "worse": WORSE, "same": SAME}, name="gated")


@pytest.fixture
def results(finished: Path) -> Results:
    return Results.model_validate_json((finished / "results.json").read_text(encoding="utf-8"))


def statuses(verdict: Verdict) -> dict[str, str]:
    return {c.target.split(" ")[0]: c.status for c in verdict.checks}


def test_threshold_on_the_confidence_bound(results: Results) -> None:
    # base acc 0.75: Wilson 95% CI about [0.60, 0.86]; worse 0.575: about [0.42, 0.72]
    verdict = evaluate(policy({"kind": "threshold", "task": "quickstart_mc", "min": 0.5}), results)
    assert statuses(verdict) == {"base": "pass", "worse": "inconclusive", "same": "pass"}
    assert not verdict.passed and verdict.exit_code == 1
    low = evaluate(policy({"kind": "threshold", "task": "quickstart_mc", "min": 0.9}), results)
    assert set(statuses(low).values()) == {"fail"}
    assert "lies below 0.9" in low.checks[0].reason


def test_threshold_on_the_point_estimate_and_maximum(results: Results) -> None:
    rule = {
        "kind": "threshold",
        "task": "quickstart_mc",
        "min": 0.6,
        "judge_on": "value",
        "models": ["worse"],
    }
    verdict = evaluate(policy(rule), results)
    assert [(c.target, c.status) for c in verdict.checks] == [("worse on quickstart_mc (acc)", "fail")]
    assert "(point estimate)" in verdict.checks[0].reason
    ceiling = evaluate(policy({"kind": "threshold", "task": "quickstart_mc", "max": 0.95}), results)
    assert ceiling.passed


ON_VALUE = """
rules:
  - kind: threshold
    task: quickstart_mc
    models: [worse]
    min: 0.6
    on: value
"""


def test_the_old_key_on_is_read_with_a_deprecation_warning(results: Results) -> None:
    """YAML 1.1 reads the key ``on`` as the boolean true; a policy written as the docs once showed loads."""
    data = yaml.safe_load(ON_VALUE)
    assert True in data["rules"][0]  # what users' files hold
    with pytest.warns(
        DeprecationWarning, match="threshold gate on 'quickstart_mc': the key 'on' is now 'judge_on'"
    ) as caught:
        old = parse_policy(data, "policy.yaml")
    assert all(issubclass(w.category, DeprecatedKey) for w in caught)
    with pytest.warns(DeprecatedKey, match="judge_on"):  # the string key, as JSON (an old manifest) holds it
        quoted = parse_policy(yaml.safe_load(ON_VALUE.replace("on: value", "'on': value")), "policy.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = parse_policy(yaml.safe_load(ON_VALUE.replace("on: value", "judge_on: value")), "policy.yaml")
    assert old == quoted == new and new.rules[0].judge_on == "value"  # type: ignore[union-attr]
    verdict = evaluate(new, results)
    assert [(c.status, "(point estimate)" in c.reason) for c in verdict.checks] == [("fail", True)]


def test_the_old_and_the_new_key_together_are_an_error() -> None:
    text = ON_VALUE.replace("on: value", "on: value\n    judge_on: bound")
    with pytest.warns(DeprecatedKey), pytest.raises(ConfigError, match="give 'judge_on' only"):
        parse_policy(yaml.safe_load(text), "policy.yaml")


def test_gate_command_reads_a_policy_with_the_old_key(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(ON_VALUE.replace("min: 0.6", "min: 0.5"), encoding="utf-8")  # worse 0.575 >= 0.5
    assert cli.main(["gate", str(finished), "--policy", str(path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: threshold gate on 'quickstart_mc': the key 'on' is now 'judge_on'" in err
    assert err.count("note:") == 1


def test_inconclusive_counts_as_the_policy_says(results: Results) -> None:
    rule = {"kind": "threshold", "task": "quickstart_mc", "min": 0.5}
    assert evaluate(policy(rule, inconclusive="fail"), results).exit_code == 1
    assert evaluate(policy(rule, inconclusive="pass"), results).exit_code == 0


def test_non_inferiority_pass_fail_inconclusive(results: Results) -> None:
    wide = evaluate(policy({"kind": "non_inferiority", "margin": 0.45}), results)
    assert statuses(wide) == {"worse": "pass", "same": "pass"}
    tight = evaluate(policy({"kind": "non_inferiority", "margin": 0.02}), results)
    assert statuses(tight) == {"worse": "fail", "same": "inconclusive"}
    same = next(c for c in tight.checks if c.target.startswith("same"))
    assert "underpowered" in same.reason and "samples needed" in same.reason


def test_references_to_unknown_things_are_config_errors(results: Results) -> None:
    with pytest.raises(ConfigError, match=r"no task 'quickstart_mq' \(did you mean 'quickstart_mc'\?\)"):
        evaluate(policy({"kind": "threshold", "task": "quickstart_mq", "min": 0.5}), results)
    with pytest.raises(ConfigError, match=r"no comparison with variant 'wrose' \(did you mean 'worse'\?\)"):
        evaluate(policy({"kind": "non_inferiority", "variants": ["wrose"]}), results)


def test_gate_command_exit_codes(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)  # gating rewrites results.json; the module's run stays as it was
    cases = {
        "passing": ({"rules": [{"kind": "threshold", "task": "quickstart_mc", "min": 0.3}]}, 0),
        "failing": ({"rules": [{"kind": "non_inferiority", "variants": ["worse"], "margin": 0.02}]}, 1),
        "inconclusive-fails": ({"rules": [{"kind": "threshold", "task": "quickstart_mc", "min": 0.5}]}, 1),
        "inconclusive-passes": (
            {"inconclusive": "pass", "rules": [{"kind": "threshold", "task": "quickstart_mc", "min": 0.5}]},
            0,
        ),
        "policy-under-gates-key": ({"gates": {"rules": [{"kind": "non_inferiority", "margin": 0.45}]}}, 0),
    }
    for name, (document, code) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        assert cli.main(["gate", str(run), "--policy", str(path)]) == code, name
    capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{kind: threshold, task: quickstart_mc}]", "exactly one of 'min' and 'max'"),
        ("rules: [{kind: threshhold, task: x, min: 1}]", "rules[0]"),
        ("rules: []", "rules: needs at least 1 entry"),
        ("rules: [{kind: non_inferiority, margn: 0.1}]", "unknown key 'margn' (did you mean 'margin'?)"),
        ("inconclusive: maybe\nrules: [{kind: non_inferiority}]", "inconclusive"),
        ("[1, 2]", "a gate policy is a mapping"),
        ("rules: [{kind: threshold, task: quickstart_mq, min: 0.1}]", "did you mean 'quickstart_mc'"),
        ("rules: [{kind: threshold, task: quickstart_mc, metric: accc, min: 0.1}]", "did you mean 'acc'"),
    ],
)
def test_malformed_policy_exits_2_with_one_line(
    text: str, message: str, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    before = (finished / "results.json").read_bytes()
    assert cli.main(["gate", str(finished), "--policy", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert (finished / "results.json").read_bytes() == before


def test_a_run_without_gates_needs_a_policy(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gate", str(finished)]) == 2
    assert "declares no gates; pass --policy FILE" in capsys.readouterr().err


def test_run_applies_its_gates_and_gate_reproduces_the_verdict(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = [
        {"kind": "threshold", "task": "quickstart_mc", "min": 0.5, "name": "floor"},
        {"kind": "non_inferiority", "margin": 0.02, "name": "no-regression"},
    ]
    run_dir = scripted_run(
        tmp_path, data_dir, {"base": BASE, "worse": WORSE}, name="ci", expect=1, gates={"rules": rules}
    )
    first = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["gates"]
    assert first["passed"] is False
    assert {(c["gate"], c["status"]) for c in first["checks"]} == {
        ("floor", "pass"),
        ("floor", "inconclusive"),
        ("no-regression", "fail"),
    }
    junit_before = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert cli.main(["gate", str(run_dir)]) == 1
    assert json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["gates"] == first
    assert (run_dir / "junit.xml").read_text(encoding="utf-8") == junit_before
    summary = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert "**Verdict: fail**" in summary and "| ❌ fail | no-regression |" in summary
    capsys.readouterr()


def text_of(page: str, element_id: str) -> str:
    from lxml import html

    return " ".join(html.fromstring(page).get_element_by_id(element_id).text_content().split())


def test_a_gates_margin_is_the_margin_every_view_shows(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gate judging with its own margin: the comparison is made with that margin, and the table, the
    banner, the forest plot, summary.md and the terminal table all name it and where it comes from."""
    from rich.console import Console

    rules = [
        {"kind": "non_inferiority", "margin": 0.45, "variants": ["worse"], "name": "loose"},
        {"kind": "non_inferiority", "variants": ["same"], "name": "plain"},  # judged on stats.margin
    ]
    gates = {"inconclusive": "pass", "rules": rules}
    models = {"base": BASE, "worse": WORSE, "same": SAME}
    run_dir = scripted_run(tmp_path, data_dir, models, name="margins", gates=gates)
    results = Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results.gates is not None and results.gates.passed
    status = {c.target.split(" ")[0]: c.status for c in results.gates.checks}
    shown = {c.variant: c.non_inferiority for c in results.comparisons}
    assert shown["worse"].non_inferior is (status["worse"] == "pass") is True  # no "no" beside a pass
    assert shown["same"].non_inferior is (status["same"] == "pass") is False
    assert shown["worse"].margin_text == "margin 0.45, from gate 'loose'"
    assert shown["same"].margin_text == "margin 0.02, from stats.margin"
    worse = next(c for c in results.comparisons if c.variant == "worse")
    assert worse.power.effect == 0.45  # power at the margin the comparison is judged with

    page = (run_dir / "report.html").read_text(encoding="utf-8")
    table = text_of(page, "comparison-table")
    assert (
        "\u22120.45 margin 0.45, from gate 'loose'" in table
    )  # U+2212 MINUS SIGN, as the table writes the limit
    assert "\u22120.02 margin 0.02, from stats.margin" in table
    banner = text_of(page, "verdict-banner")
    assert "non-inferiority margin 0.45, from gate 'loose'; margin 0.02, from stats.margin" in banner
    assert "margin 0.45, from gate &#39;loose&#39;</title>" in page  # the forest plot's point

    summary = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert "| yes (margin 0.45, from gate 'loose') |" in summary
    assert "| no (margin 0.02, from stats.margin) |" in summary
    assert "non-inferiority margin 0.45, from gate 'loose'; margin 0.02, from stats.margin)" in summary

    terminal = Console(record=True, width=250)
    terminal.print(cli.comparison_table(results.comparisons))
    lines = terminal.export_text().splitlines()
    assert any("margin 0.45, from gate 'loose'" in line for line in lines)
    assert any("margin 0.02, from stats.margin" in line for line in lines)
    capsys.readouterr()


def test_regating_moves_each_comparison_to_the_margin_of_the_new_policy(
    finished: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from evalsuite.outputs import write_outputs
    from evalsuite.rundir import load_run

    run = load_run(finished)
    before = run.results.comparisons
    assert {c.non_inferiority.margin_text for c in before} == {"margin 0.02, from stats.margin"}
    wide = policy({"kind": "non_inferiority", "margin": 0.45, "name": "wide"})
    gated = apply_policy(wide, run.results, run.config)
    assert gated.gates is not None and gated.gates.passed
    assert gated.gates == evaluate(wide, run.results)  # the gate judges on its own margin either way
    for c, check in zip(gated.comparisons, gated.gates.checks, strict=True):
        assert c.non_inferiority.margin_text == "margin 0.45, from gate 'wide'"
        assert c.non_inferiority.non_inferior is (check.status == "pass")
        assert c.power.effect == 0.45 and c.reading != "underpowered"

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    write_outputs(replace(load_run(copy), results=gated))
    summary = (copy / "summary.md").read_text(encoding="utf-8")
    assert "margin 0.45, from gate 'wide'" in summary and "margin 0.02" not in summary
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert "non-inferiority margin 0.45, from gate 'wide')" in text_of(page, "verdict-banner")

    # a policy without that gate puts each comparison back at its configured margin: the run's own records
    floor = policy({"kind": "threshold", "task": "quickstart_mc", "min": 0.3})
    assert apply_policy(floor, gated, run.config).comparisons == before


def test_gate_command_shows_the_margin_its_policy_judges_with(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evalsuite gate --policy`: the comparisons written move to the policy's margin, and back."""
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    wide = tmp_path / "wide.yaml"
    wide.write_text("rules: [{kind: non_inferiority, margin: 0.45, name: wide}]", encoding="utf-8")
    assert cli.main(["gate", str(copy), "--policy", str(wide)]) == 0
    results = Results.model_validate_json((copy / "results.json").read_text(encoding="utf-8"))
    assert {c.non_inferiority.margin_text for c in results.comparisons} == {"margin 0.45, from gate 'wide'"}
    assert all(c.non_inferiority.non_inferior for c in results.comparisons)
    summary = (copy / "summary.md").read_text(encoding="utf-8")
    assert "margin 0.45, from gate 'wide'" in summary and "margin 0.02" not in summary
    floor = tmp_path / "floor.yaml"
    floor.write_text("rules: [{kind: threshold, task: quickstart_mc, min: 0.3}]", encoding="utf-8")
    assert cli.main(["gate", str(copy), "--policy", str(floor)]) == 0
    again = Results.model_validate_json((copy / "results.json").read_text(encoding="utf-8"))
    original = Results.model_validate_json((finished / "results.json").read_text(encoding="utf-8"))
    assert again.comparisons == original.comparisons
    capsys.readouterr()


def test_two_gates_with_different_margins_on_one_comparison_are_an_error() -> None:
    models, metrics = {"base": None, "worse": "base", "same": "base"}, {"quickstart_mc": ["acc"]}
    both = policy(
        {"kind": "non_inferiority", "margin": 0.1, "name": "a"},
        {"kind": "non_inferiority", "margin": 0.2, "variants": ["worse"], "name": "b"},
    )
    message = (
        r"gate 'a' and gate 'b' both judge worse on every task, with margins 0\.1 and 0\.2: a comparison has "
        r"one non-inferiority margin"
    )
    with pytest.raises(ConfigError, match=message):
        check_references(both, models, metrics)
    with pytest.raises(ConfigError, match=r"with margins 0\.1 and 0\.2"):
        gate_margin(both, "quickstart_mc", "worse")
    assert gate_margin(both, "quickstart_mc", "same") == (0.1, "gate 'a'")
    apart = policy(
        {"kind": "non_inferiority", "margin": 0.1, "variants": ["same"]},
        {"kind": "non_inferiority", "margin": 0.2, "variants": ["worse"]},
        {"kind": "non_inferiority", "variants": ["worse"]},  # no margin of its own: judged on 0.2
    )
    check_references(apart, models, metrics)
    assert gate_margin(apart, "quickstart_mc", "worse") == (0.2, "gate 2 (non_inferiority)")


def test_junit_xml_validates_and_counts_failures(tmp_path: Path) -> None:
    checks = [
        Check(gate="floor", target="m on t (acc)", status="pass", reason="ok"),
        Check(gate="floor", target="v on t (acc)", status="fail", reason="CI [0.1, 0.2] lies below 0.5"),
        Check(gate="ni <&>", target="v vs m \x1b[31m\x00", status="inconclusive", reason='straddles "0" <x>'),
    ]
    for policy_name, failures in (("fail", 2), ("pass", 1)):
        verdict = Verdict(inconclusive_policy=policy_name, passed=False, checks=checks)  # type: ignore[arg-type]
        text = junit_xml(verdict, "run \x07")
        document = etree.fromstring(text.encode("utf-8"))
        schema = etree.XMLSchema(etree.parse(str(FIXTURES / "junit.xsd")))
        assert schema.validate(document), schema.error_log
        assert document.get("failures") == str(failures)
        assert len(document.findall("./testsuite/testcase")) == 3
        assert len(document.findall(".//failure")) == failures
        from junitparser import JUnitXml

        path = tmp_path / f"{policy_name}.xml"
        path.write_text(text, encoding="utf-8")
        parsed = JUnitXml.fromfile(str(path))
        assert (
            sum(suite.tests for suite in parsed) == 3 and sum(suite.failures for suite in parsed) == failures
        )


def test_summary_markdown_escapes_what_it_shows(results: Results) -> None:
    from evalsuite.report import summary_markdown

    hostile = results.model_copy(update={"run": "x | <script>alert(1)</script>\nnext"})
    text = summary_markdown(hostile)
    assert "<script>" not in text and "&lt;script&gt;" in text and "x \\| " in text
    assert text.splitlines()[0] == "# evalsuite: x \\| &lt;script&gt;alert(1)&lt;/script&gt; next"


def test_gate_on_a_copied_run_dir(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Gates need only the records: a copy elsewhere, without the model files, gates the same."""
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    path = tmp_path / "policy.yaml"
    path.write_text(
        yaml.safe_dump({"rules": [{"kind": "non_inferiority", "margin": 0.45}]}), encoding="utf-8"
    )
    for model_file in finished.parent.parent.glob("*.jsonl"):
        assert model_file.is_file()  # the replay files exist, but gating never opens them
    assert cli.main(["gate", str(copy), "--policy", str(path)]) == 0
    capsys.readouterr()


def test_non_inferiority_gate_without_any_baseline_fails_before_running(
    data_dir: Path, stories: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "run": {"output_dir": str(tmp_path / "out"), "data_dir": str(data_dir)},
        "models": [{"name": "solo", "path": str(stories)}],
        "tasks": ["quickstart_mc"],
        "gates": {"rules": [{"kind": "non_inferiority"}]},
    }
    (tmp_path / "solo.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(tmp_path / "solo.yaml")]) == 2
    assert "no model has a baseline" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------
# Shift gates: how far a variant moves from its baseline. Records built by hand.


def shifted(
    variant: str,
    task: str = "arc",
    flips: tuple[int, int] | None = (1, 1),
    kl: tuple[float | None, float | None] = (0.001, 0.01),
    n: int = 400,
    baseline: str = "base",
    noise_floor: bool = False,
) -> Comparison:
    """A comparison of ``variant`` with ``baseline`` on ``task``: flips (b, c) of ``n`` (None: a metric
    that is not right/wrong) and the pair's token KL (mean, p99; None: not measured)."""
    from tests.report.forest_run import comparison

    c = comparison(task, "acc" if flips else "word_perplexity", baseline, variant, 0.0, "stats.margin")
    discordant = None
    if flips is not None:
        b, v = flips
        discordant = Discordant(both=n - b - v, baseline_only=b, variant_only=v, neither=0)
    shift = None if kl == (None, None) else ShiftResult(token_kl=kl[0], token_kl_p99=kl[1], tokens=5000)
    return c.model_copy(update={"n": n, "discordant": discordant, "shift": shift, "noise_floor": noise_floor})


def judged(*comparisons: Comparison, **rule: Any) -> dict[str, tuple[str, str]]:
    """Each check's target -> (status, reason) under one shift gate."""
    results = Results(run="r", results=[], comparisons=list(comparisons))
    verdict = evaluate(policy({"kind": "shift", **rule}), results)
    return {c.target: (c.status, c.reason) for c in verdict.checks}


FLOOR = "base-batch64"


def test_shift_flip_rate_on_its_exact_binomial_interval() -> None:
    cases = {"few": (2, 2), "many": (40, 20), "near": (10, 10)}  # of 400: 0.01, 0.15, 0.05
    checks = judged(*(shifted(v, flips=f) for v, f in cases.items()), max_flip_rate=0.05)
    assert {t: s for t, (s, _) in checks.items()} == {
        "few vs base on arc (flips)": "pass",  # exact 95% CI [0.0027, 0.0254]
        "many vs base on arc (flips)": "fail",  # [0.116, 0.189]
        "near vs base on arc (flips)": "inconclusive",  # [0.031, 0.076]
    }
    assert checks["few vs base on arc (flips)"][1] == (
        "flip rate 0.0100 (4/400), exact 95% CI [0.0027, 0.0254] lies below 0.05"
    )
    assert "lies above 0.05" in checks["many vs base on arc (flips)"][1]
    assert "straddles 0.05; more samples would decide" in checks["near vs base on arc (flips)"][1]


def test_shift_flip_rate_on_the_point_value() -> None:
    checks = judged(
        shifted("near", flips=(10, 10)), shifted("over", flips=(11, 10)), max_flip_rate=0.05, judge_on="value"
    )
    assert checks == {
        "near vs base on arc (flips)": ("pass", "flip rate 0.0500 (20/400) meets <= 0.05 (point estimate)"),
        "over vs base on arc (flips)": ("fail", "flip rate 0.0525 (21/400) misses <= 0.05 (point estimate)"),
    }


def test_shift_token_kl_is_one_check_per_pair() -> None:
    pair = [shifted("q4", task=t, kl=(0.02, 0.8)) for t in ("arc", "hella")]
    ok = judged(*pair, max_token_kl=0.05, max_token_kl_p99=1.0)
    assert ok == {"q4 vs base (token KL)": ("pass", "token KL mean 0.02 <= 0.05; token KL p99 0.8 <= 1")}
    high_mean = judged(*pair, max_token_kl=0.01)
    assert high_mean == {"q4 vs base (token KL)": ("fail", "token KL mean 0.02 > 0.01")}
    high_tail = judged(*pair, max_token_kl=0.05, max_token_kl_p99=0.5)
    assert high_tail["q4 vs base (token KL)"] == (
        "fail",
        "token KL mean 0.02 <= 0.05; token KL p99 0.8 > 0.5",
    )


def test_shift_with_a_missing_measure_is_inconclusive() -> None:
    no_kl = judged(shifted("served", kl=(None, None)), max_token_kl=0.05, max_flip_rate=0.5)
    assert no_kl["served vs base (token KL)"] == (
        "inconclusive",
        "no token KL mean for the pair (the backend shows no next-token distributions, or "
        "stats.kl_samples is 0)",
    )
    assert no_kl["served vs base on arc (flips)"][0] == "pass"
    old = judged(shifted("old", kl=(0.01, None)), max_token_kl_p99=1.0)
    assert old["old vs base (token KL)"] == (
        "inconclusive",
        "no token KL p99 for the pair (the run was written before it was recorded)",
    )
    perplexity = judged(shifted("q4", task="wiki", flips=None), max_flip_rate=0.05)
    assert perplexity == {
        "q4 vs base on wiki (flips)": (
            "inconclusive",
            "no flips: metric 'word_perplexity' is not right/wrong, so it has no discordant counts",
        )
    }


def test_shift_scope_tasks_and_variants() -> None:
    records = [shifted(v, task=t) for v in ("q4", "q8") for t in ("arc", "hella")]
    checks = judged(*records, max_flip_rate=0.5, max_token_kl=1.0, tasks=["hella"], variants=["q8"])
    assert sorted(checks) == ["q8 vs base (token KL)", "q8 vs base on hella (flips)"]


NOISY = [  # base-batch64 (the noise floor): 3 flips on arc, KL 0.001 (p99 0.01); a second floor: 2, 0.0005
    shifted(FLOOR, flips=(1, 2), kl=(0.001, 0.01), noise_floor=True),
    shifted("base-kernel", flips=(2, 0), kl=(0.0005, 0.02), noise_floor=True),
]


def test_shift_within_noise_passes_at_most_the_largest_noise_floor() -> None:
    q8 = shifted("q8", flips=(2, 1), kl=(0.001, 0.015))  # 3 flips <= 3, KL 0.001 <= 0.001, p99 <= 0.02
    checks = judged(*NOISY, q8, within_noise=True)  # the noise floors themselves are not judged
    assert checks == {
        "q8 vs base on arc (flips)": (
            "pass",
            "flips on arc 3 within the noise floor's largest 3 (base-batch64, base-kernel)",
        ),
        "q8 vs base (token KL)": (
            "pass",
            "token KL mean 0.001 within the noise floor's largest 0.001 (base-batch64, base-kernel); "
            "token KL p99 0.015 within the noise floor's largest 0.02 (base-batch64, base-kernel)",
        ),
    }


def test_shift_within_noise_fails_above_the_noise_floor() -> None:
    q4 = shifted("q4", flips=(6, 2), kl=(0.0009, 0.6))
    checks = judged(*NOISY, q4, within_noise=True, max_flip_rate=0.5)
    assert checks["q4 vs base on arc (flips)"][0] == "fail"
    assert "flips on arc 8 above the noise floor's largest 3" in checks["q4 vs base on arc (flips)"][1]
    assert checks["q4 vs base on arc (flips)"][1].startswith("flip rate 0.0200 (8/400)")  # both criteria
    status, reason = checks["q4 vs base (token KL)"]
    assert status == "fail" and "token KL mean 0.0009 within" in reason and "token KL p99 0.6 above" in reason


def test_shift_within_noise_without_the_variants_kl_is_inconclusive() -> None:
    served = shifted("served", kl=(None, None))
    checks = judged(*NOISY, served, within_noise=True)
    assert checks["served vs base (token KL)"][0] == "inconclusive"
    assert "token KL mean: missing for the variant" in checks["served vs base (token KL)"][1]
    # a noise floor without KL judges no KL (as the panel does): flips alone
    floor = shifted(FLOOR, kl=(None, None), noise_floor=True)
    assert judged(floor, shifted("q8", kl=(0.5, 5.0)), within_noise=True) == {
        "q8 vs base on arc (flips)": (
            "pass",
            "flips on arc 2 within the noise floor's largest 2 (base-batch64)",
        )
    }


def test_shift_within_noise_is_the_panels_rule(tmp_path: Path) -> None:
    """The report's "within noise" mark and the gate's verdict, on one run: they agree variant by variant."""
    from evalsuite.report.quantization import quantization_panel
    from evalsuite.rundir import load_run
    from tests.report.test_quantization import write_quant_run

    run = load_run(write_quant_run(tmp_path))
    panel = quantization_panel(run)
    assert panel is not None
    marks = {r.model: r.within_noise for r in panel.tables[0].rows if r.within_noise is not None}
    assert marks == {"q8": True, "q4": False}
    floors = [
        c.model_copy(update={"noise_floor": c.variant == "base-batch64"}) for c in run.results.comparisons
    ]
    verdict = evaluate(
        policy({"kind": "shift", "within_noise": True}),
        run.results.model_copy(update={"comparisons": floors}),
    )
    gated: dict[str, set[str]] = {}
    for check in verdict.checks:
        gated.setdefault(check.target.split(" ")[0], set()).add(check.status)
    assert {model: statuses == {"pass"} for model, statuses in gated.items()} == marks
    # the records alone now say which variant is the noise floor: the panel reads that too
    assert quantization_panel(replace_results(run, floors)) == panel


def replace_results(run: Any, comparisons: list[Comparison]) -> Any:
    from dataclasses import replace

    manifest = run.manifest.model_copy(update={"config": {"models": []}})  # no noise_floor in the config
    return replace(
        run, manifest=manifest, results=run.results.model_copy(update={"comparisons": comparisons})
    )


def test_shift_within_noise_without_a_noise_floor_is_a_config_error() -> None:
    message = (
        r"gate 1 \(shift\): within_noise: baseline 'base' has no noise floor to judge against: add a model "
        r"with 'variant_of: base' and 'noise_floor: true'"
    )
    with pytest.raises(ConfigError, match=message):
        judged(shifted("q4"), within_noise=True)
    models, metrics = {"base": None, "q4": "base", FLOOR: "base"}, {"arc": ["acc"]}
    rule = policy({"kind": "shift", "within_noise": True})
    with pytest.raises(ConfigError, match=message):
        check_references(rule, models, metrics, noise_floors=())
    check_references(rule, models, metrics, noise_floors=[FLOOR])
    other = {**models, "other": None, "o4": "other"}  # o4's baseline has none
    with pytest.raises(ConfigError, match="baseline 'other' has no noise floor"):
        check_references(rule, other, metrics, noise_floors=[FLOOR])
    check_references(
        policy({"kind": "shift", "within_noise": True, "variants": ["q4"]}), other, metrics, [FLOOR]
    )


def test_shift_references_to_unknown_things_are_config_errors() -> None:
    models, metrics = {"base": None, "q4_k_m": "base"}, {"arc": ["acc"]}
    cases = {
        "the run has no model 'q4_k_n' \\(did you mean 'q4_k_m'\\?\\)": {"variants": ["q4_k_n"]},
        "the run has no task 'ark' \\(did you mean 'arc'\\?\\)": {"tasks": ["ark"]},
        "model 'base' has no baseline to move from": {"variants": ["base"]},
    }
    for message, scope in cases.items():
        with pytest.raises(ConfigError, match=message):
            check_references(policy({"kind": "shift", "max_token_kl": 0.1, **scope}), models, metrics)
    with pytest.raises(ConfigError, match="no model has a baseline"):
        check_references(policy({"kind": "shift", "max_token_kl": 0.1}), {"base": None}, metrics)
    with pytest.raises(ConfigError, match=r"no comparison with variant 'q4_k_n' \(did you mean 'q4_k_m'\?\)"):
        judged(shifted("q4_k_m"), max_token_kl=0.1, variants=["q4_k_n"])
    with pytest.raises(ConfigError, match=r"no comparison on task 'ark' \(did you mean 'arc'\?\)"):
        judged(shifted("q4"), max_token_kl=0.1, tasks=["ark"])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "shift"}, "a shift gate needs at least one of 'max_flip_rate', 'max_token_kl'"),
        ({"kind": "shift", "within_noise": False}, "needs at least one of"),
        ({"kind": "shift", "max_flip_rate": 1.5}, "max_flip_rate"),
        ({"kind": "shift", "max_flip_rate": -0.1}, "max_flip_rate"),
        ({"kind": "shift", "max_token_kl": -1}, "max_token_kl"),
        ({"kind": "shift", "max_token_kl_p99": -1}, "max_token_kl_p99"),
        ({"kind": "shift", "max_kl": 0.1}, "unknown key 'max_kl' (did you mean 'max_token_kl'?)"),
        ({"kind": "shfit", "max_token_kl": 0.1}, "'shift'"),
    ],
)
def test_malformed_shift_gates(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_policy({"rules": [rule]}, "policy.yaml")


def test_a_run_marks_its_noise_floor_and_gates_on_it(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Config to records: the comparison of a noise-floor model says so in results.json, and a finished
    run is re-gated on it from the records alone (replay shows no distributions: no token KL)."""
    floor = set(BASE) - {0, 1} | {35}  # 3 flips
    close = set(BASE) - {2} | {36}  # 2 flips
    models = {"base": BASE, "floor": floor, "close": close, "worse": WORSE}  # worse: 9 flips
    gates = {"rules": [{"kind": "shift", "within_noise": True, "name": "near"}]}
    run_dir = scripted_run(tmp_path, data_dir, models, name="noise", expect=1, gates=gates, noise=["floor"])
    results = Results.model_validate_json((run_dir / "results.json").read_text(encoding="utf-8"))
    assert {c.variant: c.noise_floor for c in results.comparisons} == {
        "floor": True,
        "close": False,
        "worse": False,
    }
    assert results.gates is not None
    assert [(c.target, c.status) for c in results.gates.checks] == [
        ("close vs base on quickstart_mc (flips)", "pass"),
        ("worse vs base on quickstart_mc (flips)", "fail"),
    ]
    assert cli.main(["gate", str(run_dir)]) == 1
    old = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    for c in old["comparisons"]:
        del c["noise_floor"]  # a results.json written before the field: loads, with no noise floor
    assert not any(c.noise_floor for c in Results.model_validate(old).comparisons)
    capsys.readouterr()


def test_a_within_noise_gate_without_a_noise_floor_fails_before_running(
    data_dir: Path, stories: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "run": {"output_dir": str(tmp_path / "out"), "data_dir": str(data_dir)},
        "models": [
            {"name": "base", "path": str(stories)},
            {"name": "v", "variant_of": "base", "dtype": "bfloat16"},
        ],
        "tasks": ["quickstart_mc"],
        "gates": {"rules": [{"kind": "shift", "within_noise": True}]},
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert cli.main(["run", str(tmp_path / "model.yaml")]) == 2
    assert "noise_floor: true" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any model loaded or anything was written
