"""SageMaker's rule for the names of jobs, model package groups, models, endpoint configs,
their variants and endpoints, so that names valid there are valid here and back.

One statement of it for every app (and the CLI, which checks names before it uploads
anything): standard library only, so the client imports it without Django.
"""

from __future__ import annotations

import re

MAX_NAME = 63
# SageMaker's pattern; its hyphen runs are unbounded, hence the length checked apart (every
# such column holds 63 characters).
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NAME_RULE = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"


def is_name(name: object) -> bool:
    """Whether `name` is such a name (NAME_RULE): all of it, at most MAX_NAME long."""
    return isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None
