"""Child-process helpers shared by the CLI supervisor and the embedded Redis."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel send SIGTERM to the child when we die (Linux;
    elsewhere None: a SIGKILLed `up` may then leave its children running).

    prctl is looked up here, before fork: between fork and exec the child may only do
    simple things (other threads' locks are frozen), and a ctypes call through an already
    resolved function pointer is one.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # we died between fork and prctl: nobody would signal
            os._exit(1)

    return preexec
