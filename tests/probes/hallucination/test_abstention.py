"""The abstention rules one by one, and the detector on a hand-labelled set (the one its threshold is
calibrated on; abstention.py's docstring states what counts as an abstention and the figures checked here)."""

from __future__ import annotations

import pytest

from evalsuite.errors import ConfigError
from evalsuite.probes.hallucination.abstention import (
    ABSTENTION_PHRASES,
    ABSTENTION_RULES,
    DEFAULT_THRESHOLD,
    Abstention,
    AbstentionDetector,
    matching_rule,
)
from evalsuite.probes.hallucination.embedding import SentenceEmbedder

# Each rule: an answer it fires on, and a near miss (sharing its words) on which no rule fires.
RULE_EXAMPLES: dict[str, tuple[str, str]] = {
    "empty": (" ... ", "0"),
    "dont_know": ("I really don't know.", "Many people don't know that it is Paris."),
    "no_idea": ("No clue, sorry.", "The idea is that water boils at 100 C."),
    "unsure": ("I am not certain.", "I am sure it is Paris."),
    "cannot_answer": ("I can't say.", "I can answer that: it is Paris."),
    "cannot_find": ("I wasn\u2019t able to locate any such paper.", "You can find it in the Louvre."),
    "no_record": ("I have no information.", "There is no doubt that it is Paris."),
    "no_information": ("We do not have enough data on that.", "I don't have to guess: it is 8."),
    "no_such": ("No such treaty was ever signed.", "There is no such thing as a free lunch, said Friedman."),
    "does_not_exist": ("I don't believe that author exists.", "The castle still exists and is in Prague."),
    "fictional": ("That sounds made-up.", "Water is made up of hydrogen and oxygen."),
    "unknown": ("The cause remains unknown.", "The author is unknown to many readers, but it is Tolkien."),
    "never_heard": ("I've never heard of her.", "He never heard back from the publisher."),
    "not_aware": ("I am not aware of such a treaty.", "Most people are not aware that it is Paris."),
    "not_familiar": ("That doesn't ring a bell.", "You are probably familiar with Paris."),
    "not_in_context": ("The passage does not mention his age.", "The passage says it was 1066."),
    "undeterminable": ("It is impossible to say.", "The answer cannot be 7; it is 8."),
}

# The labelled set. Abstentions: the answer gives no answer of its own (see abstention.py).
ABSTAIN_RULED = [
    "I don't know.",
    "I do not know who that is.",
    "Honestly, I have no idea.",
    "I'm not sure.",
    "I am not certain of the answer to that.",
    "There is no such person.",
    "I cannot find any information about Zorblax Quentin.",
    "I couldn't find any record of that book.",
    "The Treaty of Valmora does not exist.",
    "That company appears to be fictional.",
    "There is no record of a scientist by that name.",
    "Her date of birth is unknown.",
    "I have never heard of that band.",
    "I'm not aware of any such law.",
    "I cannot answer that question.",
    "I'm unable to determine when that happened.",
    "I don't have any information about that event.",
    "This question cannot be answered from the passage.",
    "I'm not familiar with that novel.",
    "",
    "   ",
    "Unknown.",
]
# Abstentions worded so that no rule matches: only embeddings can catch them.
ABSTAIN_UNRULED = [
    "Hmm, that name doesn't ring any bells for me.",
    "Nobody knows for certain.",
    "That's a mystery to me.",
    "I'm drawing a blank on this one.",
    "That is beyond what I can tell you.",
    "My knowledge doesn't cover that topic.",
    "I can't recall anyone by that name.",
    "That information isn't available to me.",
    "Sorry, I really can't help with that one.",
    "No one by that name shows up in anything I know of.",
]
# Answers: they commit to something.
ANSWER_PLAIN = [
    "Paris is the capital of France.",
    "She was born in 1867 in Warsaw.",
    "The novel was written by Jane Austen in 1813.",
    "Yes.",
    "No.",
    "42",
    "The mitochondria is the powerhouse of the cell.",
    "The Treaty of Versailles was signed in 1919.",
    "The band Nirvana was formed in Aberdeen, Washington.",
    "Mount Everest is the highest mountain above sea level.",
]
# Hard negatives: answers that share words (or a hedge) with abstentions.
ANSWER_HARD = [
    "No, Paris is the capital.",
    "The author is unknown to many readers but it is Tolkien.",
    "Sherlock Holmes is a fictional detective created by Arthur Conan Doyle.",
    "I know this one: it was 1969.",
    "I'm sure it is Canberra, not Sydney.",
    "Many people don't know that the Great Wall is not visible from space.",
    "There is no doubt that water boils at 100 degrees Celsius at sea level.",
    "Water is made up of hydrogen and oxygen.",
    "I'm not sure, but I think it was Marie Curie.",
    "It was probably 1952, though I'm not entirely certain.",
    "The unknown soldier is buried at Arlington.",
    "Nobody thought it would work, but the Wright brothers flew in 1903.",
    "It does exist: the Voynich manuscript is held at Yale.",
    "He never heard back from the publisher, so he self-published in 1922.",
    "The answer cannot be 7; it is 8.",
    "There is no such thing as a free lunch, the economist Milton Friedman said.",
    "I have heard of it; it is a small town in Bavaria.",
    "The record for the 100 metres is 9.58 seconds, held by Usain Bolt.",
    "The information you need is on page 12: the treaty was signed in 1648.",
    "I can answer that: the speed of light is about 300,000 km per second.",
    "Its exact origin was debated, but it is now attributed to Shakespeare.",
    "The question is tricky, but the answer is Jupiter.",
]
ABSTAIN = ABSTAIN_RULED + ABSTAIN_UNRULED
ANSWER = ANSWER_PLAIN + ANSWER_HARD

# What abstention.py's docstring claims on this set: (threshold or None for rules only, precision, recall).
CLAIMS = [(None, 1.00, 0.69), (DEFAULT_THRESHOLD, 1.00, 0.72), (0.50, 0.96, 0.78)]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder.load()


def test_every_rule_has_an_example() -> None:
    assert [name for name, _ in ABSTENTION_RULES] == list(RULE_EXAMPLES)


@pytest.mark.parametrize("name", list(RULE_EXAMPLES))
def test_rule_fires_on_its_example_and_not_on_a_near_miss(name: str) -> None:
    fires, near_miss = RULE_EXAMPLES[name]
    assert dict(ABSTENTION_RULES)[name].search(fires), fires
    assert matching_rule(fires) == name
    assert matching_rule(near_miss) is None, near_miss


def test_rules_ignore_case_and_curly_apostrophes() -> None:
    assert matching_rule("I DON\u2019T KNOW") == "dont_know"
    assert matching_rule("i\u2019m not sure") == "unsure"
    assert matching_rule("UNANSWERABLE") == "undeterminable"


def test_unknown_to_whom() -> None:
    assert matching_rule("Her birthplace remains unknown to this day.") == "unknown"
    assert matching_rule("The cause is unknown to science.") == "unknown"
    assert matching_rule("The author is unknown to most people, but it is Tolkien.") is None


def test_a_hedged_guess_is_an_answer_but_a_strong_rule_still_counts() -> None:
    assert matching_rule("I'm not sure, but I think it was 1952.") is None
    assert matching_rule("I don't know. My best guess is Paris.") is None
    assert matching_rule("I'm not sure, but I think it may be fictional.") == "fictional"
    assert matching_rule("I'm not sure; I think that person does not exist.") == "does_not_exist"


def test_the_labelled_set_is_what_it_says() -> None:
    assert len(ABSTAIN) == len(ANSWER) == 32
    assert all(matching_rule(text) is not None for text in ABSTAIN_RULED)
    assert all(matching_rule(text) is None for text in ABSTAIN_UNRULED)


def _precision_recall(detector: AbstentionDetector) -> tuple[float, float]:
    caught = sum(a.abstained for a in detector.detect(ABSTAIN))
    false = sum(a.abstained for a in detector.detect(ANSWER))
    return caught / max(caught + false, 1), caught / len(ABSTAIN)


@pytest.mark.parametrize(("threshold", "precision", "recall"), CLAIMS)
def test_precision_and_recall_are_at_least_what_the_docstring_claims(
    embedder: SentenceEmbedder, threshold: float | None, precision: float, recall: float
) -> None:
    detector = AbstentionDetector(None) if threshold is None else AbstentionDetector(embedder, threshold)
    measured = _precision_recall(detector)
    assert measured[0] >= precision - 0.005 and measured[1] >= recall - 0.005, measured


def test_decisions_without_embeddings() -> None:
    detector = AbstentionDetector(None)
    assert detector.detect(["", "I don't know.", "Paris."]) == [
        Abstention(True, "empty", None),
        Abstention(True, "dont_know", None),
        Abstention(False, None, None),
    ]
    assert detector.detect([]) == []


def test_decisions_with_embeddings(embedder: SentenceEmbedder) -> None:
    detector = AbstentionDetector(embedder)
    ruled, unruled, answer = detector.detect(["I don't know.", "Nobody knows for certain.", "Paris."])
    assert (ruled.abstained, ruled.rule) == (True, "dont_know")
    assert ruled.similarity == pytest.approx(1.0, abs=1e-5)  # it is one of the phrases
    assert unruled.abstained and unruled.rule is None
    assert unruled.similarity is not None and unruled.similarity >= DEFAULT_THRESHOLD
    assert not answer.abstained and answer.similarity is not None and answer.similarity < DEFAULT_THRESHOLD
    assert detector.detect([]) == []


def test_phrases_and_threshold() -> None:
    assert 15 <= len(ABSTENTION_PHRASES) <= 30
    assert len(set(ABSTENTION_PHRASES)) == len(ABSTENTION_PHRASES)
    with pytest.raises(ConfigError, match="threshold"):
        AbstentionDetector(None, threshold=1.5)
