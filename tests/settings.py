"""Settings for the test suite: the real settings, with a throw-away data folder.

DATABASE_URL and REDIS_URL are taken from the environment as usual (CI points them at
PostgreSQL and the machine's Redis); when REDIS_URL is unset the suite starts the embedded
redis-server itself (see tests/conftest.py).
"""

from __future__ import annotations

import os
import tempfile

# Short and under /tmp: the embedded Redis listens on a unix socket in here (108-byte limit).
os.environ.setdefault("STUDIOLO_HOME", tempfile.mkdtemp(prefix="stl-test-", dir="/tmp"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 32)

from studio.settings import *  # noqa: E402, F403

# Password hashing dominates user-creating tests; strength is not under test here.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # noqa: S105 - tests only
