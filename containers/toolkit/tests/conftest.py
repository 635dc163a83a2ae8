"""The toolkit is not installed in the test environment: import it from ``src``.

The tests directory goes on ``sys.path`` too, for ``toolkit_testing`` (a uniquely named helper
module, so it never collides with another ``conftest`` when the whole project's suite runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
for path in (TESTS_DIR.parent / "src", TESTS_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from toolkit_testing import JobDir  # noqa: E402 - importable only after the path setup above


@pytest.fixture
def job(tmp_path: Path) -> JobDir:
    """An empty ``/opt/ml`` stand-in, passed to ``train`` as ``SAGEMAKER_BASE_DIR``."""
    return JobDir(tmp_path / "opt" / "ml")
