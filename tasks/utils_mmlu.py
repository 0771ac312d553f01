"""Helpers for ``mmlu_local.yaml``: one task over all 57 MMLU subjects from local CSV files.

lm-eval runs MMLU as 57 tasks (one per subject) and reports the size-weighted mean, which is the
same number as the plain mean over all 14,042 questions of this single task. Two things differ when
the subjects share one task, and the helpers below restore lm-eval's behaviour for both:

* the description names the subject; the YAML renders it per document from the ``subject`` column;
* few-shot examples are the first *n* dev examples **of the same subject** (lm-eval's ``first_n``
  sampler on the subject's own dev split). lm-eval 0.4.13 only hands the evaluated document to the
  sampler when the few-shot split is the test split, so :class:`MMLULocalTask` tells the sampler
  the subject before each prompt is built.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import datasets
from lm_eval.api.samplers import ContextSampler
from lm_eval.api.task import ConfigurableTask

_FEATURES = datasets.Features(
    {
        "subject": datasets.Value("string"),
        "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")),
        "answer": datasets.Value("int64"),
    }
)


def _read_split(folder: Path, suffix: str) -> list[dict[str, Any]]:
    """Read every ``<subject><suffix>`` CSV in ``folder`` (subjects in alphabetical order)."""
    files = sorted(folder.glob(f"*{suffix}"))
    if not files:
        raise FileNotFoundError(f"no MMLU files matching *{suffix} in {folder}")
    rows: list[dict[str, Any]] = []
    for path in files:
        subject = path.name[: -len(suffix)]
        # The csv module keeps every cell a string; datasets' CSV reader would turn all-numeric
        # choice columns into integers.
        with path.open(newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                rows.append(
                    {
                        "subject": subject,
                        "question": rec["question"],
                        "choices": [rec[f"choice{i}"] for i in range(4)],
                        "answer": int(rec["answer"]),
                    }
                )
    return rows


def load(test_dir: str, dev_dir: str, **kwargs: Any) -> datasets.DatasetDict:
    """``custom_dataset`` for lm-eval: splits ``test`` (hendrycks_test) and ``dev`` (hendrycks_dev).

    Extra keyword arguments (lm-eval passes the task metadata, e.g. ``pretrained``) are ignored.
    """
    return datasets.DatasetDict(
        {
            "test": datasets.Dataset.from_list(_read_split(Path(test_dir), "_test.csv"), features=_FEATURES),
            "dev": datasets.Dataset.from_list(_read_split(Path(dev_dir), "_dev.csv"), features=_FEATURES),
        }
    )


class SubjectFirstNSampler(ContextSampler):
    """lm-eval's ``first_n`` sampler, restricted to the dev examples of the evaluated subject."""

    def __init__(self, df: Any = None, **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.subject: str | None = None
        self._by_subject: dict[str, list[dict[str, Any]]] | None = None

    def set_subject(self, subject: str) -> None:
        self.subject = subject

    def sample(
        self, n: int, eval_doc: dict[str, Any] | None = None, df: Any = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        if n == 0:
            return []
        if df:
            self.df = df
            self._by_subject = None
        subject = eval_doc["subject"] if eval_doc is not None else self.subject
        if subject is None:
            raise RuntimeError(
                "SubjectFirstNSampler needs the evaluated subject; use it with utils_mmlu.MMLULocalTask"
            )
        if self._by_subject is None:
            self._by_subject = {}
            for fs_doc in self.fewshot_docs():
                self._by_subject.setdefault(fs_doc["subject"], []).append(fs_doc)
        pool = self._by_subject.get(subject, [])
        if n > len(pool):
            raise ValueError(f"{n} few-shot examples requested, but {subject!r} has {len(pool)} dev examples")
        return pool[:n]


class MMLULocalTask(ConfigurableTask):
    """ConfigurableTask that passes each document's subject to the few-shot sampler."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the YAML key that selected this class is not a TaskConfig field
        super().__init__(config=config, **kwargs)

    def fewshot_context(self, doc: dict[str, Any], num_fewshot: int, *args: Any, **kwargs: Any) -> Any:
        sampler = getattr(self, "sampler", None)
        if hasattr(sampler, "set_subject"):  # duck-typed: the YAML loader may import this module twice
            sampler.set_subject(doc["subject"])  # type: ignore[union-attr]
        return super().fewshot_context(doc, num_fewshot, *args, **kwargs)
