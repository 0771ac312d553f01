"""The report's hallucination section: every hallucination probe unit's metrics, reliability diagrams, and
each unit's worst cases.

Units of the hallucination kinds (``fabricated``, ``unanswerable``, ``halueval``, ``faithfulness``,
``self_consistency/<task>``, ``calibration/<task>``; :mod:`evalsuite.probes.hallucination` defines their
metrics) get one table per kind, a row per (unit, model), each metric with its interval and its meaning
on hover. Each calibration unit and model gets a reliability diagram (:class:`Reliability`) drawn from the
bins in its ``probe.reliability``, and every unit and model a list of its worst records
(:mod:`evalsuite.report.worst_cases`). The main Results table and the robustness section leave these
units out (:func:`~evalsuite.report.probe_tables.probe_units`).
"""

from __future__ import annotations

from dataclasses import dataclass

from evalsuite.records import MetricResult, ReliabilityBin, TaskResult
from evalsuite.report.probe_tables import Family, family_tables, probe_units
from evalsuite.report.render import Section, add_section, clean
from evalsuite.report.worst_cases import worst_cases
from evalsuite.rundir import RunDir

# kind -> metric -> (column heading, what it means), in the table's order; one name may differ by kind
METRICS = {
    "fabricated": {
        "hallucination_rate": (
            "hallucination rate",
            "made-up entities answered without abstaining; lower is better",
        ),
        "abstention_rate": ("abstention", "made-up entities the model abstained on"),
        "control_accuracy": (
            "control accuracy",
            "questions about real entities answered with an accepted answer",
        ),
        "control_abstention_rate": (
            "control abstention",
            "real-entity questions abstained on; lower is better",
        ),
    },
    "unanswerable": {
        "abstention_f1": ("abstention F1", "F1 of abstaining as a detector of unanswerable questions"),
        "abstention_precision": ("abstention precision", "abstentions that were on unanswerable questions"),
        "abstention_recall": ("abstention recall", "unanswerable questions the model abstained on"),
        "exact_match": ("exact match", "answerable questions answered exactly (an abstention scores 0)"),
        "f1": ("F1", "token F1 of the answers to answerable questions (SQuAD normalisation)"),
        "false_abstention_rate": ("false abstention", "answerable questions abstained on; lower is better"),
    },
    "halueval": {
        "accuracy": ("accuracy", "right judgements over all items; an unparseable reply counts as wrong"),
        "accuracy_parsed": ("accuracy (parsed)", "right judgements over the replies with a Yes or No"),
        "unparseable_rate": ("unparseable", "replies with neither Yes nor No; lower is better"),
        "hallucinated_recall": ("hallucinated recall", "hallucinated answers judged hallucinated"),
        "right_answer_accuracy": ("right-answer accuracy", "right answers judged not hallucinated"),
    },
    "self_consistency": {
        "auroc_semantic_entropy": (
            "AUROC (semantic entropy)",
            "how well semantic entropy predicts a wrong greedy answer; 0.5 is chance",
        ),
        "auroc_disagreement": (
            "AUROC (disagreement)",
            "how well disagreement with the greedy answer predicts a wrong one; 0.5 is chance",
        ),
        "accuracy": ("accuracy", "greedy answers right by the task's metric"),
        "semantic_entropy": (
            "semantic entropy",
            "mean entropy (nats) of the sampled answers' meaning clusters",
        ),
    },
    "calibration": {
        "ece": ("ECE", "expected calibration error over 10 confidence bins; lower is better"),
        "brier": ("Brier", "multi-class Brier score; lower is better"),
        "accuracy": ("accuracy", "questions whose most likely option is the gold one"),
        "mean_confidence": ("mean confidence", "mean probability of the most likely option"),
    },
    "faithfulness": {
        "faithfulness": ("faithfulness", "answers that follow the passage, all items"),
        "counterfactual_faithfulness": (
            "counterfactual faithfulness",
            "answers that follow a passage contradicting common knowledge",
        ),
        "memory_rate": ("memory rate", "counterfactual items answered from memory; lower is better"),
    },
}

TITLES = {
    "fabricated": "Fabricated entities",
    "unanswerable": "Unanswerable questions",
    "halueval": "HaluEval QA judgements",
    "self_consistency": "Self-consistency",
    "calibration": "Calibration",
    "faithfulness": "Faithfulness to context",
}
FAMILIES = tuple(Family(kind, title, tuple(METRICS[kind])) for kind, title in TITLES.items())  # a table each


@dataclass
class Reliability:
    """A reliability diagram: accuracy against confidence, one bar per non-empty bin, and the diagonal."""

    label: str
    bins: list[ReliabilityBin]  # the non-empty ones
    ece: MetricResult | None
    size: int = 240  # the plot area is a square of this side
    left: int = 44
    top: int = 14
    bottom: int = 40

    @property
    def width(self) -> int:
        return self.left + self.size + 14

    @property
    def height(self) -> int:
        return self.top + self.size + self.bottom

    @property
    def most(self) -> int:
        return max((b.count for b in self.bins), default=0)

    def x(self, confidence: float) -> float:
        """Pixels from the left; confidence 0 at the plot's left edge, 1 at its right."""
        return round(self.left + min(max(confidence, 0.0), 1.0) * self.size, 2)

    def y(self, accuracy: float) -> float:
        """Pixels from the top; accuracy 0 at the plot's bottom edge, 1 at its top."""
        return round(self.top + (1.0 - min(max(accuracy, 0.0), 1.0)) * self.size, 2)


def reliability(result: TaskResult) -> Reliability:
    """The diagram of one calibration unit and model, from the bins its probe summary keeps."""
    bins = result.probe.reliability if result.probe is not None else []
    shown = [b for b in bins if b.count > 0 and b.accuracy is not None]
    return Reliability(clean(f"{result.task} · {result.model}"), shown, result.metrics.get("ece"))


def hallucination(run: RunDir) -> Section | None:
    units = probe_units(run, hallucination=True)
    if not units:
        return None
    data = {
        "tables": family_tables(units, FAMILIES, lambda kind: kind),  # a table per kind
        "names": METRICS,
        "diagrams": [reliability(r) for r in units if r.probe is not None and r.probe.kind == "calibration"],
        "worst": worst_cases(run.samples, units),
    }
    return Section("hallucination", "Hallucination", "hallucination", data)


add_section(hallucination)
