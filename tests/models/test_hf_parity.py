"""The hf backend agrees with lm-eval's own `hf` model: same per-sample log-likelihoods, same accuracy.

Reference: lm-eval's ``simple_evaluate`` with its ``HFLM`` on the real stories260K checkpoint and the
shared ARC-Challenge copy; evalsuite: the same task through its own engine and records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalsuite.config import ModelConfig
from evalsuite.engine import Engine
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.tasks import TaskCatalog, aggregate, build_task, score_task, task_dirs

LIMIT = 120


@pytest.fixture(scope="module")
def reference(stories: Path, data_dir: Path) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    config = TaskCatalog(task_dirs(), data_dir).resolve("arc_challenge_local").config
    assert config is not None
    lm = HFLM(pretrained=str(stories), dtype="float32", batch_size=16, device="cpu")
    out = simple_evaluate(model=lm, tasks=[dict(config)], limit=LIMIT, log_samples=True, bootstrap_iters=0)
    assert out is not None
    return out


def test_loglikelihoods_and_accuracy_match_lm_eval(
    reference: dict[str, Any], stories: Path, data_dir: Path, tmp_path: Path
) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("arc_challenge_local")
    prepared = build_task(spec, limit=LIMIT, num_fewshot=None, seed=1234)
    backend = BACKENDS.get("hf")(
        ModelConfig(name="stories", path=str(stories), batch_size=7), LoadContext(tmp_path, seed=0)
    )
    records = score_task(prepared, "stories", Engine(backend), lambda done: None)
    result = aggregate(prepared, "stories", records, IntervalSettings(seed=0))

    theirs = {s["doc_id"]: s for s in reference["samples"]["arc_challenge_local"]}
    assert sorted(theirs) == [r.doc_id for r in records]
    worst = 0.0
    for record in records:
        assert record.error is None and record.choices is not None
        expected = [resp[0][0] for resp in theirs[record.doc_id]["resps"]]
        ours = [c.loglikelihood for c in record.choices]
        assert len(ours) == len(expected)
        for mine, ref in zip(ours, expected, strict=True):
            assert mine is not None
            worst = max(worst, abs(mine - ref))
        assert record.metrics["acc"] == theirs[record.doc_id]["acc"]
        assert record.metrics["acc_norm"] == theirs[record.doc_id]["acc_norm"]
    print(f"largest log-likelihood difference: {worst:.2e}")
    assert worst < 1e-4, f"largest log-likelihood difference {worst:.2e}"
    lm_eval_results = reference["results"]["arc_challenge_local"]
    assert result.metrics["acc"].value == lm_eval_results["acc,none"]
    assert result.metrics["acc_norm"].value == lm_eval_results["acc_norm,none"]
    assert result.metrics["acc"].n == LIMIT
