"""Keys users may not write: what the platform wrote for a job, what a package pinned.

The artifact store is one namespace per team, and the team's scientists may upload anywhere
in it; but a job's model archive, or the archive a model package was approved with, must
not change under the feet of those who rely on it. Which keys those are is known to the apps
above this one (jobs, the registry), which this layer may not import: each registers a
checker at start-up (its AppConfig.ready), and every user write path asks
`require_user_writable` before it writes.

A checker takes a validated key and returns why it is protected (one sentence for the 403),
or None. Checkers must be cheap: a user's upload runs all of them.
"""

from __future__ import annotations

from collections.abc import Callable

from studio.errors import PermissionDenied

ProtectedKeyChecker = Callable[[str], str | None]

_checkers: dict[str, ProtectedKeyChecker] = {}


def protected_key_checker_register(name: str, checker: ProtectedKeyChecker) -> None:
    """Register (or replace, when the app is set up again) the checker called `name`."""
    _checkers[name] = checker


def protected_key_reason(key: str) -> str | None:
    """Why users may not write `key`, or None when they may."""
    for checker in _checkers.values():
        reason = checker(key)
        if reason:
            return reason
    return None


def require_user_writable(key: str) -> None:
    """Raise PermissionDenied (403, field `key`) when `key` is one users may not write."""
    reason = protected_key_reason(key)
    if reason:
        raise PermissionDenied(f"{key} cannot be written: {reason}", field="key")
