"""benchmarks/gpu_check.py and benchmarks/gpu_bundle.py at tiny sizes on CPU: the report's shape and its
agreement numbers (the GPU machine runs the same code at full sizes), and the bundle without network."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
MODELS = ("llama-1b", "llama-8b", "mixtral-8x7b-8layers")
SIDES = ("lm_eval", "evalsuite", "evalsuite_one_request")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    return load("gpu_check")


@pytest.fixture(scope="module")
def report(gpu_check: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu-check") / "report.json"
    code = gpu_check.main(["--tiny", "--device", "cpu", "--dtype", "float32", "--out", str(out)])
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0, result["checks"]
    return result


def test_tiny_report_has_every_part(report: dict[str, Any]) -> None:
    assert report["settings"]["preset"] == "tiny" and report["settings"]["device"] == "cpu"
    assert report["environment"]["versions"]["torch"] and report["environment"]["versions"]["lm_eval"]
    assert sorted(report["models"]) == sorted(MODELS)
    requests = report["settings"]["requests"]
    assert requests == report["settings"]["documents"] * 4
    for name in MODELS:
        part = report["models"][name]
        assert "error" not in part, part.get("traceback")
        assert part["requests"] == requests and part["parameters"] > 0
        for side in SIDES:
            assert part[side]["seconds"] > 0
            assert part[side]["model_tokens"] > 0
            assert part[side]["request_tokens_per_second"] > 0
        # shared prefixes run once: fewer positions computed than one request at a time
        assert part["evalsuite"]["model_tokens"] < part["evalsuite_one_request"]["model_tokens"]
    assert report["oom_backoff"]["skipped"].startswith("needs CUDA")
    assert report["checks"] and all(report["checks"].values()), report["checks"]


@pytest.mark.parametrize("key", ["agreement_vs_lm_eval", "agreement_share_prefix_vs_one_request"])
def test_tiny_scores_agree(report: dict[str, Any], key: str) -> None:
    for name in MODELS:
        agree = report["models"][name][key]
        assert agree["requests"] == report["settings"]["requests"]
        assert agree["all_finite"] and agree["within_tolerance"]
        assert agree["max_abs_loglikelihood_difference"] < 1e-4, (name, agree)
        assert agree["greedy_flags_equal"] == agree["requests"]
        assert agree["same_argmax"] == agree["same_argmax_norm"] == agree["documents"] > 0


def test_tiny_moe_routing_telemetry(report: dict[str, Any]) -> None:
    routing = report["models"]["mixtral-8x7b-8layers"]["routing"]
    assert routing["gates_found"] == routing["layers"] == 2
    assert routing["routed_tokens"] == routing["scored_tokens"] > 0
    assert routing["load_rows_sum_to_one"]
    assert len(routing["routing_entropy"]) == 2
    assert all(0 <= e <= routing["balanced_load_entropy"] + 1e-6 for e in routing["load_entropy"])
    assert "routing" not in report["models"]["llama-1b"]


def test_agreement_flags_a_real_disagreement(gpu_check: ModuleType) -> None:
    """The verdicts are computed, not copied: a shifted log-likelihood that flips an answer fails both."""
    from lm_eval.api.instance import Instance

    doc = {"id": 0}
    instances = [Instance("loglikelihood", doc, ("q", f" {c}"), i, ("t", 0, 1)) for i, c in enumerate("ab")]
    reference = [(-1.0, True), (-3.0, False)]
    same = gpu_check.agreement(instances, reference, [(-1.0, True), (-3.0, False)], [1, 1], 1e-4)
    assert same["within_tolerance"] and same["same_argmax"] == 1 and same["near_ties"] == 0
    flipped = gpu_check.agreement(instances, reference, [(-4.0, False), (-3.0, False)], [1, 1], 1e-4)
    assert not flipped["within_tolerance"]
    assert flipped["same_argmax"] == 0 and flipped["greedy_flags_equal"] == 1
    assert math.isclose(flipped["max_abs_loglikelihood_difference"], 3.0)
    parts = {"agreement_vs_lm_eval": flipped, "agreement_share_prefix_vs_one_request": same}
    report = {"models": {"m": parts}, "oom_backoff": {"skipped": "cpu"}}
    checks = gpu_check.checks(report)
    assert checks["m: agreement_vs_lm_eval within tolerance"] is False
    assert checks["m: agreement_share_prefix_vs_one_request argmax"] is True


def test_half_precision_is_held_to_its_error_against_float32(gpu_check: ModuleType, tmp_path: Path) -> None:
    """In bf16 the per-token tolerance is reported, not checked; each side's error against a float32 run
    of the same weights is. lm-eval takes the log-softmax of bf16 logits and evalsuite of float32 ones, so
    lm-eval's error is the larger (about 35x at tiny sizes)."""
    out = tmp_path / "bf16.json"
    code = gpu_check.main(
        ["--tiny", "--device", "cpu", "--dtype", "bfloat16", "--models", "llama-1b", "--skip-oom",
         "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text(encoding="utf-8"))
    assert code == 0, report["checks"]
    error = report["models"]["llama-1b"]["error_vs_float32"]
    assert error["requests"] == report["settings"]["requests"]
    for side in SIDES:
        assert 0 < error[side]["mean_abs_error"] <= error[side]["max_abs_error"]
    assert error["evalsuite"]["mean_abs_error"] * 5 < error["lm_eval"]["mean_abs_error"]
    checks = report["checks"]
    assert checks["llama-1b: evalsuite no less accurate than lm-eval (vs float32)"]
    assert not any("within tolerance" in name for name in checks), checks


def test_no_less_accurate_allows_rounding_noise_only(gpu_check: ModuleType) -> None:
    error = {"a": {"mean_abs_error": 0.0105}, "b": {"mean_abs_error": 0.01}, "c": {"mean_abs_error": 0.02}}
    assert gpu_check.no_less_accurate(error, "a", "b")  # 0.0105 <= 1.1 * 0.01 + 0.001
    assert not gpu_check.no_less_accurate(error, "c", "b")  # 0.02 > 0.012
    assert gpu_check.no_less_accurate(error, "b", "c")


def test_bundle_dry_run_lists_what_the_image_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = load("gpu_bundle")
    assert bundle.main(["--dry-run"]) == 0
    fetched = {
        line.split()[1].split("==")[0]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("fetch ")
    }
    assert {"lm-eval", "pydantic", "pydantic-core", "tenacity"} <= fetched
    assert not fetched & {"torch", "transformers", "tokenizers", "numpy", "evalsuite", "accelerate"}
    assert not any(name.startswith("nvidia-") for name in fetched)


def test_bundle_builds_evalsuite_wheel_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("setuptools", reason="the offline wheel build uses this environment's setuptools")
    bundle = load("gpu_bundle")
    assert bundle.main(["--evalsuite-only", "--dest", str(tmp_path)]) == 0
    wheels = [p.name for p in tmp_path.glob("*.whl")]
    assert len(wheels) == 1 and wheels[0].startswith("evalsuite-") and wheels[0].endswith("-py3-none-any.whl")
    assert "MiB in" in capsys.readouterr().out
