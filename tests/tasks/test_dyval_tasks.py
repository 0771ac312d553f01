"""The dyval_*_local task files: DyVal's generated items as ordinary lm-eval tasks, asked with the probe's
prompt and judged as the probe judges them."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from evalsuite.dynamic import dyval
from evalsuite.dynamic.dyval_probe import PROMPT, UNTIL
from evalsuite.tasks import PreparedTask, TaskCatalog, build_task, task_dirs
from evalsuite.tasks.scoring import apply_filters, process_results

REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks"
PER_LEVEL = 50  # the task files' dataset_kwargs
FAMILIES = dyval.FAMILIES


def prepare(name: str, extra: tuple[Path, ...] = ()) -> PreparedTask:
    spec = TaskCatalog(task_dirs(extra), None).resolve(name)  # no data folder: the items are generated
    return build_task(spec, limit=None, num_fewshot=None, seed=1234)


@pytest.fixture(scope="module")
def prepared() -> dict[str, PreparedTask]:
    return {family: prepare(f"dyval_{family}_local") for family in FAMILIES}


def generated(family: dyval.Family, seed: int, per_level: int = PER_LEVEL) -> list[dyval.Item]:
    return [item for level in dyval.LEVELS for item in dyval.generate(family, level, per_level, seed)]


def score(prepared: PreparedTask, doc: dict[str, Any], answer: str) -> dict[str, Any]:
    """One answer through evalsuite's own path: the task's filters, then its ``process_results``."""
    request = Instance("generate_until", doc, ("prompt", {}), 0, (prepared.spec.name, 0, 1))
    request.resps = [answer]
    apply_filters(prepared.task, [request])
    metrics, error = process_results(prepared.task, doc, [request])
    assert error is None
    return metrics


@pytest.mark.parametrize("family", FAMILIES)
def test_each_task_loads_the_generated_items_offline(
    prepared: dict[str, PreparedTask], family: dyval.Family
) -> None:
    task = prepared[family]
    assert task.task.OUTPUT_TYPE == "generate_until"
    assert task.num_fewshot == 0
    assert task.metric_names == ("exact_match",)
    assert task.cluster_by is None
    docs = list(task.task.eval_docs)
    assert len(docs) == len(dyval.LEVELS) * PER_LEVEL
    assert docs == [asdict(item) for item in generated(family, seed=0)]
    assert [doc["level"] for doc in docs] == [level for level in dyval.LEVELS for _ in range(PER_LEVEL)]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_prompt_and_generation_settings_are_the_probes(
    prepared: dict[str, PreparedTask], family: dyval.Family
) -> None:
    task = prepared[family]
    instances = sorted(task.instances, key=lambda i: i.doc_id)
    assert len(instances) == len(dyval.LEVELS) * PER_LEVEL
    for request, item in zip(instances, generated(family, seed=0), strict=True):
        prompt, settings = request.args
        assert prompt == PROMPT.format(question=item.question, instruction=dyval.INSTRUCTION[family])
        assert settings["until"] == list(UNTIL)
        assert settings["max_gen_toks"] == 256
        assert settings["do_sample"] is False


def test_another_seed_gives_other_items_through_an_including_task_file(tmp_path: Path) -> None:
    """The override the task files' header documents: a file of one's own that includes the shipped one."""
    (tmp_path / "mine.yaml").write_text(
        f"task: dyval_boolean_seed7\ninclude: {REPO_TASKS / 'dyval_boolean_local.yaml'}\n"
        "dataset_kwargs: {per_level: 3, seed: 7}\n",
        encoding="utf-8",
    )
    task = prepare("dyval_boolean_seed7", (tmp_path,))
    docs = list(task.task.eval_docs)
    assert docs == [asdict(item) for item in generated("boolean", seed=7, per_level=3)]
    seed_0 = {item.question for item in generated("boolean", seed=0)}
    assert not seed_0 & {doc["question"] for doc in docs}


def utils_dyval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("utils_dyval_under_test", REPO_TASKS / "utils_dyval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_loader_takes_levels_and_ignores_lm_evals_metadata() -> None:
    utils = utils_dyval()
    dataset = utils.load("deduction", levels=[2, 4], per_level=3, seed=5, version=1.0, pretrained="x")
    assert list(dataset) == ["test"]
    rows = list(dataset["test"])
    assert [row["level"] for row in rows] == [2, 2, 2, 4, 4, 4]
    assert rows[3:] == [asdict(item) for item in dyval.generate("deduction", 4, 3, 5)]
    with pytest.raises(ValueError, match="must not repeat"):
        utils.load("deduction", levels=[1, 1])
    with pytest.raises(ValueError, match="level must be one of"):
        utils.load("deduction", levels=[5])


@pytest.mark.parametrize("family", FAMILIES)
def test_the_canonical_answer_scores_1_and_a_wrong_one_0(
    prepared: dict[str, PreparedTask], family: dyval.Family
) -> None:
    task = prepared[family]
    others = {"True": "False", "False": "Unknown" if family == "deduction" else "True", "Unknown": "True"}
    for doc in list(task.task.eval_docs)[:: PER_LEVEL // 5]:  # 5 items a level
        answer = doc["answer"]
        wrong = str(int(answer) + 1) if family == "arithmetic" else others[answer]
        assert score(task, doc, f"Some work.\nAnswer: {answer}") == {"exact_match": 1}
        assert score(task, doc, f"Some work.\nAnswer: {wrong}") == {"exact_match": 0}


# (family, answer, response, right): the hand-judged reading, which must also be dyval.correct's
HAND_WRITTEN = [
    ("arithmetic", "1234", "Answer: 1,234", True),
    ("arithmetic", "1234", "So the value is 1234.\n**Answer:** 1234.", True),
    ("arithmetic", "1234", "Adding up, mnh is 1234.", True),  # no "Answer:" line: the last value
    ("arithmetic", "1234", "Answer: 1234.0", True),
    ("arithmetic", "1234", "Answer: 12,34", False),
    ("arithmetic", "1234", "Answer: 1234\nWait, I made an error.\nAnswer: 1243", False),  # the last line
    ("arithmetic", "-7", "Answer: \u22127", True),  # typographic minus
    ("arithmetic", "-7", "Answer: 7", False),
    ("boolean", "False", "Answer: false", True),
    ("boolean", "False", "aab is True and aac is True, so the root is False.", True),
    ("boolean", "False", "Answer: **True**", False),
    ("boolean", "False", "Answer: No", False),
    ("deduction", "Unknown", "Answer: unknown", True),
    ("deduction", "Unknown", "Answer: Unknown, since no rule makes it True or False.", True),
    ("deduction", "Unknown", "Answer: False", False),
    ("deduction", "Unknown", "", False),
]


@pytest.mark.parametrize(("family", "answer", "text", "right"), HAND_WRITTEN)
def test_scoring_agrees_with_dyval_correct(
    prepared: dict[str, PreparedTask], family: dyval.Family, answer: str, text: str, right: bool
) -> None:
    item = dyval.Item(family, 1, 0, "a question", answer, 6)
    assert dyval.correct(item, text) is right
    assert score(prepared[family], asdict(item), text) == {"exact_match": int(right)}


def test_lm_eval_itself_runs_the_task_files_with_include_path() -> None:
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(REPO_TASKS), include_defaults=False)
    tasks = get_task_dict([f"dyval_{family}_local" for family in FAMILIES], manager)
    for family in FAMILIES:
        task = tasks[f"dyval_{family}_local"]
        doc = task.eval_docs[0]
        item = generated(family, seed=0)[0]
        assert doc == asdict(item) and len(task.eval_docs) == len(dyval.LEVELS) * PER_LEVEL
        assert task.doc_to_text(doc) == PROMPT.format(
            question=item.question, instruction=dyval.INSTRUCTION[family]
        )
        assert task.process_results(doc, [f"Answer: {item.answer}"]) == {"exact_match": 1}
