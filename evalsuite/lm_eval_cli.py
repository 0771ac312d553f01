"""``python -m evalsuite.lm_eval_cli``: lm-eval's own command line, with the models of installed packages.

lm-eval releases with plugin discovery find models that packages declare in the ``lm_eval.models``
entry-point group (evalsuite declares ``evalsuite-hf`` there, ``pyproject.toml``), so ``lm_eval run
--model evalsuite-hf`` works with them directly. lm-eval 0.4.13, the newest release evalsuite can install,
reads no entry points: its registry knows only its own models and whatever a module imported in the same
process registered, and its CLI imports nothing of the user's. This module registers the entry points'
models as lazy placeholders, the way that discovery does (built-in names win; a plugin module is imported
only when its model is asked for), then runs lm-eval's CLI entry ``lm_eval.__main__.cli_evaluate``
unchanged, with the same arguments: every ``lm_eval`` command line works after
``python -m evalsuite.lm_eval_cli``.
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "lm_eval.models"


def register_entry_points() -> list[str]:
    """Add each ``lm_eval.models`` entry point to lm-eval's model registry under its name, unless the name
    is taken; returns the names added. The placeholder is the entry point's ``module:object`` text, which
    lm-eval's registry replaces with the class when the module's own ``@register_model`` runs."""
    import lm_eval.models  # noqa: F401  # registers lm-eval's own models first, so they keep their names
    from lm_eval.api.registry import model_registry

    added = []
    for point in entry_points(group=GROUP):
        if point.name not in model_registry:
            model_registry.register(point.name, target=point.value)
            added.append(point.name)
    return added


def main() -> None:
    register_entry_points()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
