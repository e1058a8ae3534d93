"""Pages and screens of the browser tests: the viewports, the bound of every browser wait,
and a page that records what it got wrong (uncaught errors, CSP violations)."""

from __future__ import annotations

from playwright.sync_api import ConsoleMessage, Page

# ms any single browser action or expectation may take: bounded, and far above the page's
# refresh (0.5 s), so that a wait only fails when the page really does not get there
TIMEOUT_MS = 10_000
WIDE = {"width": 1280, "height": 900}  # a laptop
NARROW = {"width": 390, "height": 844}  # a phone


class Watched:
    """What a page got wrong so far: uncaught errors, and scripts, styles or requests its
    Content-Security-Policy refused (the page must need no inline script or style)."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")


def watched(page: Page) -> Page:
    """`page`, with `page.problems`: the list `Watched` fills."""
    page.problems = Watched(page).problems  # type: ignore[attr-defined]
    return page
