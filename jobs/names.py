"""The names a job and its input channels may have: SageMaker's rules, so that requests valid
there are valid here and back (a job's name follows the rule of every named object,
`studio.names`).

The one statement of them: the submission service checks names with these, and so does the
`studiolo train` client before it uploads anything (it names the upload's folder after the
job). Standard library only: the client imports this module without Django.
"""

from __future__ import annotations

import re

from studio.names import MAX_NAME, NAME_RULE, is_name

MAX_JOB_NAME = MAX_NAME
JOB_NAME_RULE = NAME_RULE

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
CHANNEL_NAME_RULE = "1-64 of A-Z a-z 0-9 . - _"


def is_job_name(name: str) -> bool:
    """Whether `name` may name a job (JOB_NAME_RULE)."""
    return is_name(name)


def is_channel_name(name: str) -> bool:
    """Whether `name` may name an input channel (CHANNEL_NAME_RULE)."""
    return _CHANNEL_NAME.fullmatch(name) is not None
