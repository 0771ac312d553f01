"""Adaptive attacks: textattack searches for a small edit of the sample's text that changes the answer.

The model's multiple-choice scoring is wrapped as a classifier (softmax over the options'
log-likelihoods); every batch of candidate texts the search asks about is one round of requests through
the engine. Recipes are textattack compositions of goal, constraints, transformation and search, with
stop words from an explicit list and nothing that downloads (no embeddings, no sentence encoder):

* ``deepwordbug`` - Gao et al. 2018, "Black-box Generation of Adversarial Text Sequences to Evade Deep
  Learning Classifiers": character swap/substitution/deletion/insertion, edit distance <= 30, greedy
  search by word importance (UNK replacement).
* ``pruthi`` - Pruthi et al. 2019, "Combating Adversarial Misspellings with Robust Word Recognition":
  one internal-character edit (swap, deletion, insertion, QWERTY) on one word of >= 4 letters, greedy.
* ``textbugger`` - Li et al. 2019, "TextBugger: Generating Adversarial Text Against Real-world
  Applications", character bugs only (space insertion, deletion, swap, homoglyph); its embedding-swap
  bug and Universal Sentence Encoder constraint need downloads and are left out.

A sample the model already gets wrong is skipped, as textattack does; success rate counts the others.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np

from evalsuite.engine import Engine
from evalsuite.errors import ConfigError
from evalsuite.logs import quiet_logger
from evalsuite.probes.adversarial.textattack_env import load_textattack, seeded_global_rngs
from evalsuite.probes.base import ProbeUnit, Sample, Variant, check_task, clean, rewrite, text_fields
from evalsuite.probes.kinds.attack import AttackConfig, AttackDetails, AttackStatus
from evalsuite.probes.metrics import metric, normal_interval, pdr_interval, summary, task_result
from evalsuite.probes.scoring import run_variants
from evalsuite.records import MetricResult, SampleRecord, TaskResult
from evalsuite.stats.intervals import IntervalSettings, mean_interval

STATUSES: tuple[str, ...] = get_args(AttackStatus)


class AttackProbe:
    adaptive: bool = True

    def __init__(self, config: AttackConfig, cache_dir: Path) -> None:
        self.config = config
        self.textattack = load_textattack(cache_dir)

    def prepare(self, unit: ProbeUnit, samples: list[Sample]) -> list[Variant]:
        first = samples[0]
        check_task(unit, first)
        if first.options is None:
            raise ConfigError(
                f"probe {unit.config.label!r}: attacks need a multiple-choice task (the model's option "
                f"probabilities are the classifier); {unit.task_name!r} is not one"
            )
        # a task without attackable text fails here, before any model loads
        text_fields(unit, first, self.config.fields)
        return [clean(unit, s) for s in samples]

    def run(
        self,
        unit: ProbeUnit,
        variants: list[Variant],
        model: str,
        engine: Engine,
        progress: Callable[[int], None],
    ) -> list[SampleRecord]:
        classifier = EngineClassifier(unit, engine)
        attack = build_attack(self.textattack, self.config, classifier)
        records: list[SampleRecord] = []
        for variant in variants:
            sample = variant.sample
            fields = text_fields(unit, sample, self.config.fields)
            classifier.focus(sample, fields)
            example: Any = (
                str(sample.doc[fields[0]])
                if len(fields) == 1
                else OrderedDict((f, str(sample.doc[f])) for f in fields)
            )
            with seeded_global_rngs(unit.seed_for(sample.doc_id, "attack")):
                result = attack.attack(example, int(sample.gold or 0))
            attacked = classifier.document(result.perturbed_result.attacked_text)
            final = rewrite(unit, sample, "attack", attacked, details=describe(result))
            records += run_variants(unit, [variant, final], model, engine, lambda done: None)
            progress(1)
        return records

    def summarize(
        self, unit: ProbeUnit, model: str, records: list[SampleRecord], settings: IntervalSettings
    ) -> TaskResult:
        attacked = [r for r in records if r.variant == "attack" and r.error is None and r.probe is not None]
        errors = len({r.doc_id for r in records if r.error is not None})
        outcomes = [r.probe.details_as(AttackDetails) for r in attacked if r.probe is not None]
        status: list[str] = [o.status for o in outcomes]
        n, conf = len(attacked), settings.confidence
        tried = [s for s in status if s != "skipped"]
        successes = [float(s == "success") for s in tried]
        clean_right = [float(s != "skipped") for s in status]
        under_attack = [float(s in ("failed", "maximized")) for s in status]
        queries = [float(o.queries) for o in outcomes if o.status != "skipped"]
        share = [o.perturbed_word_share for o in outcomes if o.status == "success"]
        rng = np.random.default_rng(settings.seed)
        metrics: dict[str, MetricResult] = {
            "clean": metric(mean_interval(clean_right, conf), n, errors, True),
            "perturbed": metric(mean_interval(under_attack, conf), n, errors, True),
            "attack_success_rate": metric(mean_interval(successes, conf), len(tried), errors, False),
            "queries": metric(normal_interval(queries, conf), len(queries), errors, None),
            "perturbed_word_share": metric(normal_interval(share, conf), len(share), errors, None),
        }
        pdr = pdr_interval(np.array(clean_right), np.array(under_attack), rng, settings)
        metrics["pdr"] = metric(pdr, n, errors, False, "pdr")
        counts = {s: status.count(s) for s in STATUSES}
        base = summary(unit, n)
        extra = base.model_copy(update={"settings": {**base.settings, "outcomes": counts}})
        return task_result(unit, model, metrics, extra, "attack_success_rate")


class EngineClassifier:
    """textattack's view of the model: texts in, option probabilities out, one engine round per call."""

    def __init__(self, unit: ProbeUnit, engine: Engine) -> None:
        self.unit, self.engine = unit, engine
        self.sample: Sample | None = None
        self.fields: tuple[str, ...] = ()
        self.model = None  # textattack reads ``model_wrapper.model``

    def focus(self, sample: Sample, fields: tuple[str, ...]) -> None:
        self.sample, self.fields = sample, fields

    def document(self, attacked_text: Any) -> dict[str, Any]:
        """The sample's document with its attacked fields replaced by ``attacked_text``'s columns."""
        columns = attacked_text.tokenizer_input
        return self._document(columns)

    def _document(self, columns: Any) -> dict[str, Any]:
        assert self.sample is not None  # focus() comes first; not user input
        values = (columns,) if isinstance(columns, str) else tuple(columns)
        return {**self.sample.doc, **dict(zip(self.fields, values, strict=True))}

    def __call__(self, texts: list[Any]) -> np.ndarray:
        assert self.sample is not None
        variants = [rewrite(self.unit, self.sample, "query", self._document(t)) for t in texts]
        outcomes = self.engine.run([r for v in variants for r in v.requests])
        rows, at = [], 0
        for variant in variants:
            lls = [
                o[0].value[0] if o[0].error is None else -np.inf
                for o in outcomes[at : at + len(variant.requests)]
            ]
            at += len(variant.requests)
            logits = np.array(lls, dtype=np.float64)
            logits = logits - logits.max() if np.isfinite(logits.max()) else np.zeros_like(logits)
            probs = np.exp(logits)
            rows.append(probs / probs.sum())
        return np.array(rows)


# What a recipe is made of, given textattack and the stop-word constraint: (transformation, constraints,
# search method); the goal (flip the classifier's answer within the query budget) is the same for all.
Parts = tuple[Any, list[Any], Any]
INNER = {"skip_first_char": True, "skip_last_char": True}  # keep a word's first and last letters


def deepwordbug(textattack: Any, stop: Any) -> Parts:
    """Gao, Lanchantin, Soffa and Qi, "Black-box Generation of Adversarial Text Sequences to Evade Deep
    Learning Classifiers", IEEE S&P Workshops 2018 (textattack's ``DeepWordBugGao2018``): character swap,
    substitution, deletion and insertion in the words that matter most, within an edit distance of 30."""
    t, pre = textattack.transformations, textattack.constraints.pre_transformation
    transformation = t.CompositeTransformation(
        [
            t.WordSwapNeighboringCharacterSwap(),
            t.WordSwapRandomCharacterSubstitution(),
            t.WordSwapRandomCharacterDeletion(),
            t.WordSwapRandomCharacterInsertion(),
        ]
    )
    constraints = [pre.RepeatModification(), stop, textattack.constraints.overlap.LevenshteinEditDistance(30)]
    return transformation, constraints, textattack.search_methods.GreedyWordSwapWIR()


def pruthi(textattack: Any, stop: Any) -> Parts:
    """Pruthi, Dhingra and Lipton, "Combating Adversarial Misspellings with Robust Word Recognition", ACL
    2019 (textattack's ``Pruthi2019``): one inner-letter swap, deletion, insertion or keyboard typo in one
    word of four letters or more."""
    t, pre = textattack.transformations, textattack.constraints.pre_transformation
    transformation = t.CompositeTransformation(
        [
            t.WordSwapNeighboringCharacterSwap(random_one=False, **INNER),
            t.WordSwapRandomCharacterDeletion(random_one=False, **INNER),
            t.WordSwapRandomCharacterInsertion(random_one=False, **INNER),
            t.WordSwapQWERTY(random_one=False, **INNER),
        ]
    )
    constraints = [
        pre.MinWordLength(min_length=4),
        stop,
        textattack.constraints.overlap.MaxWordsPerturbed(max_num_words=1),
        pre.RepeatModification(),
    ]
    return transformation, constraints, textattack.search_methods.GreedySearch()


def textbugger(textattack: Any, stop: Any) -> Parts:
    """Li, Ji, Du, Li and Wang, "TextBugger: Generating Adversarial Text Against Real-world
    Applications", NDSS 2019 (textattack's ``TextBuggerLi2018``), its character bugs only: space
    insertion, deletion, swap and homoglyphs. The embedding-swap bug and the sentence-encoder constraint
    need downloads and are left out (docs/probes.md)."""
    from evalsuite.probes.adversarial._textattack_glue import FileFreeHomoglyphSwap

    t = textattack.transformations
    transformation = t.CompositeTransformation(
        [
            t.WordSwapRandomCharacterInsertion(random_one=True, letters_to_insert=" ", **INNER),
            t.WordSwapRandomCharacterDeletion(random_one=True, **INNER),
            t.WordSwapNeighboringCharacterSwap(random_one=True, **INNER),
            FileFreeHomoglyphSwap(),
        ]
    )
    constraints = [textattack.constraints.pre_transformation.RepeatModification(), stop]
    return transformation, constraints, textattack.search_methods.GreedyWordSwapWIR(wir_method="delete")


RECIPES: dict[str, Callable[[Any, Any], Parts]] = {
    "deepwordbug": deepwordbug,
    "pruthi": pruthi,
    "textbugger": textbugger,
}
"""Every attack ``recipe:`` names, one builder per paper; ``AttackRecipe`` (its kind module) lists them."""


def build_attack(textattack: Any, config: AttackConfig, classifier: EngineClassifier) -> Any:
    """The recipe's textattack ``Attack`` around ``classifier``, with the probe's query budget."""
    from evalsuite.probes.adversarial._textattack_glue import Stopwords

    wrapper = _wrapper(textattack, classifier)
    # textattack warns that it cannot tell whether a wrapped model is a classifier
    with quiet_logger("textattack.shared.utils.install"):
        goal = textattack.goal_functions.UntargetedClassification(wrapper, query_budget=config.query_budget)
    transformation, constraints, method = RECIPES[config.recipe](textattack, Stopwords())
    return textattack.Attack(goal, constraints, transformation, method)


def _wrapper(textattack: Any, classifier: EngineClassifier) -> Any:
    """A ``textattack.models.wrappers.ModelWrapper`` subclass calling ``classifier``."""

    class Wrapper(textattack.models.wrappers.ModelWrapper):  # type: ignore[misc]
        def __init__(self) -> None:
            self.model = None

        def __call__(self, texts: list[Any]) -> np.ndarray:
            return classifier(texts)

    return Wrapper()


def describe(result: Any) -> dict[str, Any]:
    """What to record of one attack: outcome, queries, and how much of the text changed."""
    name = type(result).__name__
    status = next((s for s in STATUSES if name.lower().startswith(s)), "failed")
    original, perturbed = result.original_result.attacked_text, result.perturbed_result.attacked_text
    words = len(original.words)
    changed = changed_words(original, perturbed)
    return {
        "status": status,
        "queries": int(result.perturbed_result.num_queries),
        "perturbed_words": changed,
        "words": words,
        "perturbed_word_share": changed / words if words else 0.0,
    }


def changed_words(original: Any, perturbed: Any) -> int:
    """Original words the attack changed or removed. textattack's ``all_words_diff`` compares words by
    position, so an edit that splits a word ("c harming") would count every later word as changed."""
    mapping = perturbed.attack_attrs.get("original_index_map")
    if mapping is None:
        return len(original.all_words_diff(perturbed))
    new = perturbed.words
    return sum(1 for i, j in enumerate(mapping) if j < 0 or new[j] != original.words[i])
