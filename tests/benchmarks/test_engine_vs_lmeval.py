"""benchmarks/engine_vs_lmeval.py: reading lm-eval's and evalsuite's output files for --whole-command."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import engine_vs_lmeval
    finally:
        sys.path.remove(str(ROOT))
    return engine_vs_lmeval


def test_lm_eval_samples_file_names_its_task() -> None:
    name = bench().lm_eval_samples_task
    assert name("samples_arc_challenge_local_2026-12-04T22-20-23.281096.jsonl") == "arc_challenge_local"
    assert name("samples_mmlu_local_2026-12-04T22-20-23.281096.jsonl") == "mmlu_local"


def test_lm_eval_metrics_drop_stderr_and_name_filters_as_evalsuite_does() -> None:
    results = {
        "results": {
            "arc_challenge_local": {
                "name": "arc_challenge_local",
                "alias": "arc_challenge_local",
                "sample_len": 3,
                "acc,none": 0.25,
                "acc_stderr,none": 0.1,
                "acc_norm,none": 0.5,
                "acc_norm_stderr,none": "N/A",
            },
            "gsm8k_local": {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 0.125},
            "triviaqa_local": {
                "exact_match,remove_whitespace": 0.5,
                "exact_match_stderr,remove_whitespace": 0.1,
            },
        }
    }
    assert bench().lm_eval_metrics(results) == {
        "arc_challenge_local": {"acc": 0.25, "acc_norm": 0.5},
        "gsm8k_local": {"exact_match:strict-match": 0.0, "exact_match:flexible-extract": 0.125},
        "triviaqa_local": {"exact_match": 0.5},  # one filter: evalsuite names the metric alone
    }
    row = {
        "doc_id": 0,
        "arguments": {"gen_args_0": {"arg_0": "Q: ?\nA:", "arg_1": {}}},
        "resps": [["Paris"]],
        "filter": "remove_whitespace",
        "metrics": ["exact_match"],
        "exact_match": 1.0,
    }
    assert bench().lm_eval_answers([row], " ")[0].metrics == {"exact_match": 1.0}


def test_evalsuite_metrics_from_results_json() -> None:
    results = {
        "results": [
            {"task": "mmlu_local", "metrics": {"acc": {"value": 0.2, "stderr": 0.09, "n": 20}}},
            {"task": "hellaswag_local", "metrics": {"acc": {"value": 0.3}, "acc_norm": {"value": None}}},
        ]
    }
    assert bench().evalsuite_metrics(results) == {
        "mmlu_local": {"acc": 0.2},
        "hellaswag_local": {"acc": 0.3, "acc_norm": None},
    }


def test_multiple_choice_samples_agree_across_the_two_formats() -> None:
    module = bench()
    lm_eval_row = {
        "doc_id": 0,
        "arguments": {
            "gen_args_0": {"arg_0": "Q?\nAnswer:", "arg_1": " yes"},
            "gen_args_1": {"arg_0": "Q?\nAnswer:", "arg_1": " no"},
        },
        "resps": [[["-1.5", "False"]], [["-0.5", "True"]]],
        "filtered_resps": [["-1.5", "False"], ["-0.5", "True"]],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "acc": 1.0,
        "acc_norm": 0.0,
    }
    evalsuite_row = {
        "task": "t",
        "doc_id": 0,
        "prompt": "Q?\nAnswer:",
        "choices": [
            {"text": "yes", "loglikelihood": -1.50001, "is_greedy": False},
            {"text": "no", "loglikelihood": -0.5, "is_greedy": True},
        ],
        "generation": None,
        "metrics": {"acc": 1.0, "acc_norm": 0.0},
    }
    theirs = module.lm_eval_answers([lm_eval_row], " ")
    assert theirs[0] == module.Answer(
        prompt="Q?\nAnswer:",
        continuations=("yes", "no"),
        loglikelihoods=(-1.5, -0.5),
        metrics={"acc": 1.0, "acc_norm": 0.0},
    )
    other = {**evalsuite_row, "doc_id": 1, "prompt": "Other?\nAnswer:", "metrics": {"acc": 0.0}}
    ours = {row["doc_id"]: module.evalsuite_answer(row) for row in (evalsuite_row, other)}
    agreement = module.answer_agreement(theirs, ours)
    difference = agreement.pop("max_abs_loglikelihood_difference")
    assert abs(difference - 1e-5) < 1e-9
    assert agreement == {
        "documents": {"lm_eval": 1, "evalsuite": 2, "both": 1},
        "same_prompt": "1/1",
        "same_answer": "1/1",
        "same_metrics": "1/1",
        "same_choices": "1/1",
    }


def test_generation_samples_merge_lm_evals_rows_per_filter() -> None:
    module = bench()
    common = {"doc_id": 3, "arguments": {"gen_args_0": {"arg_0": "Question: 1+1?\nAnswer:", "arg_1": {}}}}
    rows = [
        {
            **common,
            "resps": [["2 #### 2"]],
            "filter": "strict-match",
            "metrics": ["exact_match"],
            "exact_match": 1.0,
        },
        {
            **common,
            "resps": [["2 #### 2"]],
            "filter": "flexible-extract",
            "metrics": ["exact_match"],
            "exact_match": 0.0,
        },
    ]
    theirs = module.lm_eval_answers(rows, " ")
    assert theirs == {
        3: module.Answer(
            prompt="Question: 1+1?\nAnswer:",
            generation="2 #### 2",
            metrics={"exact_match:strict-match": 1.0, "exact_match:flexible-extract": 0.0},
        )
    }
    ours = module.evalsuite_answer(
        {
            "prompt": "Question: 1+1?\nAnswer:",
            "choices": None,
            "generation": "2 #### 3",
            "metrics": {"exact_match:strict-match": 0.0, "exact_match:flexible-extract": 0.0},
        }
    )
    assert module.answer_agreement(theirs, {3: ours}) == {
        "documents": {"lm_eval": 1, "evalsuite": 1, "both": 1},
        "same_prompt": "1/1",
        "same_answer": "0/1",
        "same_metrics": "0/1",
    }


def test_the_run_config_gives_each_task_its_limit_and_the_shots_asked_for(tmp_path: Path) -> None:
    import argparse

    args = argparse.Namespace(batch_size=8, dtype="float32", device="cpu")
    tasks = {"mmlu_local": 200, "arc_challenge_local": None}
    text = bench().write_config(tmp_path, args, tasks, shots=5).read_text(encoding="utf-8")
    assert text.splitlines()[-1] == (
        "tasks: [{name: mmlu_local, limit: 200, num_fewshot: 5}, {name: arc_challenge_local, num_fewshot: 5}]"
    )
    plain = bench().write_config(tmp_path, args, tasks).read_text(encoding="utf-8")
    assert plain.splitlines()[-1] == "tasks: [{name: mmlu_local, limit: 200}, arc_challenge_local]"
