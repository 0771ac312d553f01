"""TruthfulQA MC1/MC2 from the local task files scores every item exactly as lm-eval 0.4.13's own tasks.

lm-eval's ``truthfulqa_mc1`` / ``truthfulqa_mc2`` read ``truthfulqa/truthful_qa`` from the hub, which tests
cannot reach. So the reference is lm-eval's own task built from its installed YAML (``load_yaml``, the
same ``include:`` and ``!function`` handling as its TaskManager) with only the dataset swapped: the
same ``mc_task.json``, turned into documents the way the hub dataset's loading script does
(``choices = list(targets)``, ``labels = list(targets.values())``, in file order).

evalsuite runs its local tasks on the real stories260K model through its engine and hf backend; the
per-option log-likelihoods it records are then fed to lm-eval's task (its filters and
``process_results``: multiple-choice ``acc`` for MC1, ``utils.process_results_mc2`` for MC2). Prompts,
continuations, documents and per-item scores must be identical.
"""

from __future__ import annotations

import inspect
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.special import softmax

from evalsuite.config import ModelConfig
from evalsuite.engine import Engine
from evalsuite.models import BACKENDS, LoadContext
from evalsuite.records import SampleRecord
from evalsuite.stats.intervals import IntervalSettings
from evalsuite.tasks import PreparedTask, TaskCatalog, aggregate, build_task, score_task, task_dirs

LIMIT = 200  # items per task (of 817); the engine runs each (prompt, answer) once for both tasks
KINDS = ("mc1", "mc2")
# Keys that decide prompts, choices and scores; the rest name the task, its data, tags and version.
SCORING_KEYS = (
    "output_type",
    "num_fewshot",
    "doc_to_text",
    "doc_to_target",
    "doc_to_choice",
    "target_delimiter",
    "fewshot_delimiter",
    "description",
    "metric_list",
    "filter_list",
    "should_decontaminate",
    "doc_to_decontamination_query",
)


def lm_eval_folder() -> Path:
    import lm_eval.tasks.truthfulqa as package  # a namespace package: no __init__.py, so no __file__

    return Path(next(iter(package.__path__)))


def hub_style_docs(path: Path) -> list[dict[str, Any]]:
    """``truthful_qa``/``multiple_choice`` as the hub dataset's loading script builds it from mc_task.json."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [
        {
            "question": row["question"],
            "mc1_targets": {
                "choices": list(row["mc1_targets"].keys()),
                "labels": list(row["mc1_targets"].values()),
            },
            "mc2_targets": {
                "choices": list(row["mc2_targets"].keys()),
                "labels": list(row["mc2_targets"].values()),
            },
        }
        for row in rows
    ]


def lm_eval_config(kind: str) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return dict(load_yaml(lm_eval_folder() / f"truthfulqa_{kind}.yaml"))


def lm_eval_task(kind: str, docs: list[dict[str, Any]]) -> Any:
    """lm-eval's own task from its installed YAML, with the hub dataset swapped for ``docs``."""
    import datasets
    from lm_eval.api.task import ConfigurableTask

    def load(**_: Any) -> datasets.DatasetDict:
        return datasets.DatasetDict({"validation": datasets.Dataset.from_list(docs)})

    config = lm_eval_config(kind)
    assert config["dataset_path"] == "truthfulqa/truthful_qa" and config["dataset_name"] == "multiple_choice"
    config["custom_dataset"] = load
    task = ConfigurableTask(config=config)
    task.build_all_requests(limit=LIMIT)
    return task


@pytest.fixture(scope="module")
def ours(
    stories: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[PreparedTask, list[SampleRecord]]]:
    """Both local tasks on stories260K through one engine (MC1's answers are all among MC2's)."""
    catalog = TaskCatalog(task_dirs(), data_dir)
    backend = BACKENDS.get("hf")(
        ModelConfig(name="stories", path=str(stories), batch_size=16),
        LoadContext(tmp_path_factory.mktemp("truthfulqa"), seed=0),
    )
    engine = Engine(backend)
    out = {}
    for kind in ("mc2", "mc1"):
        prepared = build_task(
            catalog.resolve(f"truthfulqa_{kind}_local"), limit=LIMIT, num_fewshot=None, seed=0
        )
        out[kind] = (prepared, score_task(prepared, "stories", engine, lambda done: None))
    backend.close()
    return out


@pytest.fixture(scope="module")
def theirs(data_dir: Path) -> dict[str, Any]:
    docs = hub_style_docs(data_dir / "truthfulqa" / "mc_task.json")
    return {kind: lm_eval_task(kind, docs) for kind in KINDS}


def score_with_lm_eval(task: Any, records: list[SampleRecord]) -> list[dict[str, Any]]:
    """lm-eval's per-document scores when its requests get the log-likelihoods evalsuite recorded."""
    by_doc: dict[int, list[Any]] = defaultdict(list)
    answers = {r.doc_id: r.choices for r in records}
    for instance in task.instances:
        choices = answers[instance.doc_id]
        assert choices is not None
        choice = choices[instance.idx]
        assert choice.loglikelihood is not None
        instance.resps = [(choice.loglikelihood, choice.is_greedy)]
        by_doc[instance.doc_id].append(instance)
    task.apply_filters()
    scores = []
    for doc_id, doc in task.doc_iterator(limit=LIMIT):
        requests = sorted(by_doc[doc_id], key=lambda i: i.idx)
        assert all(list(r.filtered_resps) == ["none"] for r in requests)
        scores.append(task.process_results(doc, [r.filtered_resps["none"] for r in requests]))
    return scores


@pytest.mark.parametrize("kind", KINDS)
def test_task_files_copy_lm_eval_scoring_config(kind: str, data_dir: Path) -> None:
    mine = TaskCatalog(task_dirs(), data_dir).resolve(f"truthfulqa_{kind}_local").config
    assert mine is not None
    reference = lm_eval_config(kind)
    for key in SCORING_KEYS:
        assert mine.get(key) == reference.get(key), key
    process: Callable[..., Any] | None = mine.get("process_results")
    expected: Callable[..., Any] | None = reference.get("process_results")
    if expected is None:
        assert process is None
    else:  # lm-eval loads its utils.py by path, a module object apart from the import we name
        assert process is not None
        assert inspect.getsourcefile(process) == inspect.getsourcefile(expected)
        assert process.__qualname__ == expected.__qualname__


@pytest.mark.parametrize("kind", KINDS)
def test_documents_prompts_and_answers_match_lm_eval(
    kind: str, ours: dict[str, tuple[PreparedTask, list[SampleRecord]]], theirs: dict[str, Any]
) -> None:
    prepared, records = ours[kind]
    task = theirs[kind]
    assert len(records) == LIMIT
    reference = {(i.doc_id, i.idx): i for i in task.instances}
    mine = {(i.doc_id, i.idx): i for i in prepared.instances}
    assert sorted(mine) == sorted(reference)
    for key, instance in mine.items():
        assert instance.request_type == reference[key].request_type == "loglikelihood"
        assert instance.args == reference[key].args, key  # (rendered prompt, " " + answer)
    docs = dict(task.doc_iterator(limit=LIMIT))
    for record in records:
        assert record.doc == docs[record.doc_id]
        assert record.prompt == task.doc_to_text(docs[record.doc_id])


def test_mc1_per_item_scores_match_lm_eval(
    ours: dict[str, tuple[PreparedTask, list[SampleRecord]]], theirs: dict[str, Any]
) -> None:
    prepared, records = ours["mc1"]
    scores = score_with_lm_eval(theirs["mc1"], records)
    for record, score in zip(records, scores, strict=True):
        assert record.error is None and record.choices is not None
        assert record.metrics == score, record.doc_id  # {"acc": 1.0 or 0.0}, nothing else
        lls = [c.loglikelihood for c in record.choices]
        assert score["acc"] == float(np.argmax(np.asarray(lls, dtype=np.float64)) == 0)  # true answer first
    check_means("mc1", prepared, records, scores)


def test_mc2_per_item_scores_match_lm_eval(
    ours: dict[str, tuple[PreparedTask, list[SampleRecord]]], theirs: dict[str, Any]
) -> None:
    from lm_eval.tasks.truthfulqa.utils import process_results_mc2

    prepared, records = ours["mc2"]
    scores = score_with_lm_eval(theirs["mc2"], records)
    docs = dict(theirs["mc2"].doc_iterator(limit=LIMIT))
    for record, score in zip(records, scores, strict=True):
        assert record.error is None and record.choices is not None
        results = [(c.loglikelihood, c.is_greedy) for c in record.choices]
        direct = process_results_mc2(docs[record.doc_id], results)
        assert record.metrics == {"acc": float(score["acc"])} == {"acc": float(direct["acc"])}, record.doc_id
        labels = np.array(docs[record.doc_id]["mc2_targets"]["labels"])
        mass = softmax(np.array([ll for ll, _ in results]))[labels == 1].sum()
        assert score["acc"] == pytest.approx(mass, abs=1e-12)  # normalised probability of the true answers
    check_means("mc2", prepared, records, scores)


def check_means(
    kind: str, prepared: PreparedTask, records: list[SampleRecord], scores: list[dict[str, Any]]
) -> None:
    from lm_eval.api.metrics import mean

    expected = mean([s["acc"] for s in scores])
    result = aggregate(prepared, "stories", records, IntervalSettings(seed=0))
    assert result.metrics["acc"].value == pytest.approx(expected, rel=1e-15)
    assert result.metrics["acc"].n == LIMIT
    print(f"truthfulqa_{kind} on stories260K, {LIMIT} items: acc {expected:.6f} (lm-eval) ")
