"""What the processing tests that start nothing share: the submission asks the runtime
whether it isolates (processing needs containers) and whether an image exists; these tests
answer as a Docker engine holding every image would, without one."""

from __future__ import annotations

import pytest


class EngineWithEveryImage:
    isolated = True

    def __init__(self, *missing: str) -> None:
        self.missing = set(missing)

    def image_exists(self, image: str) -> bool:
        return image not in self.missing


def pretend_docker(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    engine = EngineWithEveryImage(*missing)
    monkeypatch.setattr("jobs.services.processing.get_runtime", lambda: engine)
