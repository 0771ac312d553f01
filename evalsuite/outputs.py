"""What a run directory shows, derived from its records: results.json, report.html, summary.md, junit.xml.

Kept apart from the runner so that ``evalsuite report``, ``gate`` and ``compare`` (which re-derive these
from a finished run's records) import no model library: neither torch, transformers nor lm-eval
(``tests/test_outputs.py`` checks ``sys.modules``).
"""

from __future__ import annotations

from evalsuite import gates
from evalsuite.records import write_atomic, write_json
from evalsuite.report import render_report, summary_markdown
from evalsuite.rundir import RunDir, SealedWrite, file_digest


def write_outputs(run: RunDir, *, as_run: bool = False) -> None:
    """What is derived from the records: results.json, report.html, summary.md, junit.xml (with gates),
    sealed by checksums.sha256 (see evalsuite/rundir.py). Changes accepted with --accept-edits are
    recorded in the manifest first, so the report and summary show them. ``as_run``: the run itself
    writes, and its manifest keeps the digests of samples.jsonl and results.json as the run wrote them."""
    edited = bool(run.accepted)
    run = run.with_edits_recorded()
    results = run.results
    data = results.model_dump(mode="json", by_alias=True)
    verdict = results.gates
    with SealedWrite(run.path) as files:
        files.stage("results.json", lambda path: write_json(path, data))
        files.stage("report.html", lambda path: write_atomic(path, render_report(run)))
        files.stage("summary.md", lambda path: write_atomic(path, summary_markdown(results, run.edits)))
        if verdict is not None:
            files.stage("junit.xml", lambda path: write_atomic(path, gates.junit_xml(verdict, results.run)))
        if as_run or edited:
            manifest = run.manifest
            if as_run:  # what decisions rest on; the views' digests (they hold times) are in the checksums
                digests = {
                    "samples.jsonl": file_digest(run.path / "samples.jsonl"),
                    "results.json": files.staged["results.json"],
                }
                manifest = manifest.model_copy(update={"files": digests})
            document = manifest.document()
            files.stage("manifest.json", lambda path: write_json(path, document))
