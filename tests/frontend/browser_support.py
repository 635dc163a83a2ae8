"""Browser tests' shared set-up: Debian's Chromium through Playwright (never a downloaded
browser), and running ORM work outside Playwright's event-loop thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


def in_server_thread(work: Callable[[], None]) -> None:
    """Run ORM work outside the test thread: Playwright's sync API keeps an event loop in
    this one, and Django refuses synchronous queries next to a running loop."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if errors:
        raise errors[0]


# Every violation fires `securitypolicyviolation` on the document, also those Chromium does
# not put on the console itself (an `eval` that a library catches); this puts them there.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("Content-Security-Policy violation: " + event.violatedDirective + " blocked "
    + (event.blockedURI || "inline") + " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


class CspViolations:
    """Content-Security-Policy violations that Chromium reports on a page's console
    ("Applying inline style violates ...", and those of REPORT_CSP_VIOLATIONS)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page: Any) -> None:
        page.add_init_script(REPORT_CSP_VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.messages.append(f"{message.type}: {text}")

    def assert_none(self) -> None:
        assert not self.messages, "the page broke its Content-Security-Policy:\n" + "\n".join(
            self.messages
        )
