"""Every task file the project ships loads from the shared data with the documented number of samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.errors import ConfigError, DataError
from evalsuite.tasks import TaskCatalog, build_task, local_task_files, task_dirs

EXPECTED = {
    "arc_challenge_local": ("multiple_choice", 1172),
    "mmlu_local": ("multiple_choice", 14042),
    "hellaswag_local": ("multiple_choice", 10042),
    "truthfulqa_mc1_local": ("multiple_choice", 817),
    "truthfulqa_mc2_local": ("multiple_choice", 817),
    "gsm8k_local": ("generate_until", 1319),
    "boolq_local": ("multiple_choice", 3270),
    "dyval_arithmetic_local": ("generate_until", 200),  # generated: 4 levels x 50 items from seed 0
    "dyval_boolean_local": ("generate_until", 200),
    "dyval_deduction_local": ("generate_until", 200),
    "sst2_local": ("multiple_choice", 872),
    "lambada_local": ("loglikelihood", 5153),
    "triviaqa_local": ("generate_until", 3000),
    "wikitext2_local": ("loglikelihood_rolling", 62),
    "quickstart_mc": ("multiple_choice", 40),
    "quickstart_qa": ("generate_until", 25),
}


def test_the_repository_ships_exactly_these_tasks() -> None:
    assert sorted(local_task_files(task_dirs())) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_file_builds_requests(name: str, data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve(name)
    prepared = build_task(spec, limit=2, num_fewshot=None, seed=1234)
    output_type, size = EXPECTED[name]
    assert output_type == prepared.task.OUTPUT_TYPE
    assert len(prepared.task.eval_docs) == size
    assert {i.doc_id for i in prepared.instances} == {0, 1}
    assert all(isinstance(i.args[0], str) for i in prepared.instances)


def test_mmlu_few_shot_examples_come_from_the_same_subject(data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("mmlu_local")
    prepared = build_task(spec, limit=101, num_fewshot=5, seed=1234)  # 100 abstract algebra, then anatomy
    by_doc = {i.doc_id: i for i in prepared.instances if i.idx == 0}
    first = by_doc[0].args[0]
    assert first.startswith(
        "The following are multiple choice questions (with answers) about abstract algebra."
    )
    assert first.count("\nAnswer:") == 6  # five examples and the question
    anatomy = next(i for i in by_doc.values() if i.doc["subject"] == "anatomy")
    assert "about anatomy." in anatomy.args[0] and anatomy.args[0].count("\nAnswer:") == 6


def test_task_files_need_a_data_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reads from the data folder"):
        TaskCatalog(task_dirs(), None).resolve("arc_challenge_local")


def test_a_missing_data_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"arc_challenge\.jsonl does not exist"):
        TaskCatalog(task_dirs(), tmp_path).resolve("arc_challenge_local")


def test_user_task_folders_come_first(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "task: quickstart_mc\ndataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    test: '${task_dir}/mine.jsonl'\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\n"
        "doc_to_choice: '{{c}}'\ndoc_to_target: 0\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    (tmp_path / "mine.jsonl").write_text('{"q": "1+1=", "c": ["2", "3"]}\n', encoding="utf-8")
    spec = TaskCatalog(task_dirs((tmp_path,)), data_dir).resolve("quickstart_mc")
    assert spec.source == str(tmp_path / "mine.yaml")
    prepared = build_task(spec, limit=None, num_fewshot=None, seed=1)
    assert [i.args for i in prepared.instances] == [("1+1=", " 2"), ("1+1=", " 3")]


def test_unknown_placeholder_is_a_data_error(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        "task: odd\ndataset_path: json\ndataset_kwargs:\n  data_files: '${home}/x.jsonl'\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"unknown placeholder \$\{home\}"):
        TaskCatalog((tmp_path,), data_dir).resolve("odd")


def test_lm_eval_registry_names_resolve_without_data(data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("hellaswag")
    assert spec.source == "lm-eval" and spec.config is None
    assert spec.task_file is not None and spec.task_file.name == "hellaswag.yaml"


def test_a_registry_task_without_its_data_offline_fails_before_lm_eval_indexes_its_registry(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalsuite.tasks import sources

    def no_index() -> None:
        raise AssertionError("indexed lm-eval's registry")

    monkeypatch.setattr(sources, "task_manager", no_index)
    monkeypatch.setattr("evalsuite.tasks.evaluate.task_manager", no_index)
    spec = TaskCatalog(task_dirs(), data_dir).resolve("hellaswag")
    with pytest.raises(DataError, match=r"task 'hellaswag' \(lm-eval\) needs the dataset Rowan/hellaswag, "):
        build_task(spec, limit=2, num_fewshot=None, seed=1)


def test_sst2_keeps_quote_characters_and_both_labels(data_dir: Path) -> None:
    spec = TaskCatalog(task_dirs(), data_dir).resolve("sst2_local")
    prepared = build_task(spec, limit=None, num_fewshot=None, seed=1234)
    docs = list(prepared.task.eval_docs)
    assert sum(d["label"] == 1 for d in docs) == 444 and sum(d["label"] == 0 for d in docs) == 428
    assert docs[-1]["sentence"].endswith("improved upon . ' ")  # a bare quote is text, not CSV quoting
    first = next(i for i in prepared.instances if i.doc_id == 0 and i.idx == 1)
    assert first.args == (
        "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?"
        "\nAnswer:",
        " positive",
    )
