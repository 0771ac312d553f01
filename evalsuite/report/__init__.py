"""What a run shows its readers: the HTML report and the Markdown summary, rendered from records only."""

from evalsuite.report import robustness as _robustness  # noqa: F401  (registers the robustness section)

# isort: split
# the sections are registered in import order: hallucination after robustness
from evalsuite.report import hallucination as _hallucination  # noqa: F401  (registers its section)

# isort: split
from evalsuite.report import dynamic as _dynamic  # noqa: F401  (registers its section, after hallucination)
from evalsuite.report.render import SECTIONS, render_report
from evalsuite.report.summary import summary_markdown

__all__ = ["SECTIONS", "render_report", "summary_markdown"]
