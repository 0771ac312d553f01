"""lm-eval's template rendering, with each template compiled once."""

from __future__ import annotations

import jinja2
from lm_eval import utils

from evalsuite.tasks import templates


def test_rendering_is_lm_eval_s_own() -> None:
    doc = {"question": "Why?", "choices": ["a", "b"], "label": 1}
    template = "{{question}} {{choices[label] | regex_replace('b', 'B')}}"  # lm-eval's filter too
    reference = jinja2.Environment(
        loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    reference.filters["regex_replace"] = utils.regex_replace
    expected = reference.from_string(template).render(**doc)
    assert templates.apply_template(template, doc) == expected == "Why? B"


def test_a_template_is_compiled_once_and_installed_for_lm_eval() -> None:
    templates.compiled.cache_clear()
    for n in range(5):
        assert utils.apply_template("{{n}}!", {"n": n}) == f"{n}!"
    assert templates.compiled.cache_info().misses == 1  # lm-eval's calls went through the cache
