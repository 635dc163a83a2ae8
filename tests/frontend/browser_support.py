"""Browser tests' shared set-up: Debian's Chromium through Playwright (never a downloaded
browser), and running ORM work outside Playwright's event-loop thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

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
