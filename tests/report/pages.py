"""Helpers for the browser tests: open a report, wait for it, check that nothing ran or was fetched."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"

# What hostile content would leave behind; ``tags`` lists the elements inside the selector given.
STATE = """return {
  pwned: window.__pwned,
  scripts: document.scripts.length,
  embedded: document.querySelectorAll('img, iframe, object, embed, link, style:not(head style)').length,
  jsLinks: document.querySelectorAll('a[href^="javascript"]').length,
  handlers: [...document.querySelectorAll('*')].filter(
    (e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  tags: [...new Set([...document.querySelectorAll(arguments[0])].map((e) => e.tagName))].sort(),
  resources: performance.getEntriesByType('resource').length,
}"""


def open_report(browser: Any, path: Path) -> list[dict[str, Any]]:
    browser.get_log("browser")  # drop what an earlier page logged
    browser.get(path.resolve().as_uri())
    return list(browser.get_log("browser"))


def open_section(browser: Any, report: Path, anchor: str, title: str) -> list[dict[str, Any]]:
    """Open ``report`` (its network log starting empty) and check that section ``anchor`` shows ``title``;
    returns the browser log so far."""
    browser.get_log("performance")  # drop what earlier pages asked for
    log = open_report(browser, report)
    section = browser.find_element("id", anchor)
    assert section.is_displayed() and title in section.text
    return log


def screenshot(browser: Any, anchor: str, name: str) -> None:
    """Save a screenshot of the page scrolled to ``anchor`` as ``reports/screenshots/<name>``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.getElementById(arguments[0]).scrollIntoView()", anchor)
    browser.save_screenshot(str(SHOTS / name))


def wait_for(condition: Callable[[], bool], seconds: float = 300.0) -> None:
    """Poll until ``condition`` holds; the limit is a safety cap for a hung browser, not a speed test."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not reach the expected state in time")
        time.sleep(0.1)


def errors(log: list[dict[str, Any]]) -> list[str]:
    return [entry["message"] for entry in log if entry["level"] in ("SEVERE", "ERROR")]


def requests(browser: Any, page: str) -> list[str]:
    """URLs requested for the document at ``page`` (itself included), from the DevTools performance log."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent" and message["params"]["documentURL"] == page:
            urls.append(message["params"]["request"]["url"])
    return urls


def show(browser: Any, select: str, value: str) -> None:
    browser.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change'));",
        select,
        value,
    )


def hover_all(browser: Any, selector: str) -> None:
    """Open every ``details`` and move the mouse over every element matching ``selector``."""
    browser.execute_script(
        "document.querySelectorAll('details').forEach((d) => d.open = true);"
        "document.querySelectorAll(arguments[0]).forEach("
        "  (e) => e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})));",
        selector,
    )


def assert_inert(browser: Any, report: Path, scripts: int, tags_within: str) -> set[str]:
    """No injected script ran; the page holds ``scripts`` scripts (ours) and no embed, ``javascript:`` link
    or event handler; nothing was fetched but the page itself. Returns the tags found in ``tags_within``."""
    state = browser.execute_script(STATE, tags_within)
    assert state["pwned"] is None, f"an injected script ran: {state}"
    assert state["scripts"] == scripts and state["embedded"] == 0 and state["jsLinks"] == 0
    assert state["handlers"] == 0
    assert state["resources"] == 0  # nothing fetched, not even from disk ...
    page = report.resolve().as_uri()
    assert requests(browser, page) == [page]  # ... but the page itself
    return set(state["tags"])
