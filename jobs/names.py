"""The names a job and its input channels may have: SageMaker's rules, so that requests valid
there are valid here and back.

The one statement of them: the submission service checks names with these, and so does the
`studiolo train` client before it uploads anything (it names the upload's folder after the
job). Standard library only: the client imports this module without Django.
"""

from __future__ import annotations

import re

MAX_JOB_NAME = 63
# SageMaker's pattern; its hyphen runs are unbounded, hence the length checked apart.
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
JOB_NAME_RULE = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
CHANNEL_NAME_RULE = "1-64 of A-Z a-z 0-9 . - _"


def is_job_name(name: str) -> bool:
    """Whether `name` may name a job (JOB_NAME_RULE): the whole of it, at most 63 long."""
    return len(name) <= MAX_JOB_NAME and _JOB_NAME.fullmatch(name) is not None


def is_channel_name(name: str) -> bool:
    """Whether `name` may name an input channel (CHANNEL_NAME_RULE)."""
    return _CHANNEL_NAME.fullmatch(name) is not None
