"""Settings for the test suite: the real settings, with a throw-away data folder.

DATABASE_URL and REDIS_URL are taken from the environment as usual (CI points them at
PostgreSQL and the machine's Redis); when REDIS_URL is unset the suite starts the embedded
redis-server itself (see tests/conftest.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Short and under /tmp: the embedded Redis listens on a unix socket in here (108-byte limit).
# Worker processes started by the tests inherit STUDIOLO_HOME; only its maker removes it.
if "STUDIOLO_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="stl-test-", dir="/tmp")
    os.environ["STUDIOLO_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 32)
# A killed worker's job is taken over after this long (production: 30 s); through the
# environment, so that the workers the tests start inherit it (and a test can set its own).
os.environ.setdefault("JOB_LEASE_SECONDS", "4")
# Checkpoint folders are synced every second in tests (production: 10 s).
os.environ.setdefault("CHECKPOINT_SYNC_SECONDS", "1")

from studio.settings import *  # noqa: E402, F403

# Password hashing dominates user-creating tests; strength is not under test here.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # noqa: S105 - tests only

# A file, not SQLite's shared memory: end-to-end tests start real worker processes that
# must see the same test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(STUDIOLO_HOME / "test.sqlite3")}  # noqa: F405

# Stopping jobs in tests should not wait SageMaker's 120 s.
JOB_STOP_GRACE_SECONDS = 3

# Test runs that share a Redis (CI's, or two developers' sessions) must not hear each other:
# a prefix per run, inherited by the worker processes through STUDIOLO_HOME.
_RUN_PREFIX = "studiolo-test-" + os.path.basename(os.environ["STUDIOLO_HOME"])
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = _RUN_PREFIX + ":ws"  # noqa: F405
CELERY_BROKER_TRANSPORT_OPTIONS = {  # noqa: F405
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "global_keyprefix": _RUN_PREFIX + ":",
}

# Webhook tests deliver to receivers on 127.0.0.1, which the URL policy refuses unless a
# deployment allows it; worker processes started by tests read this too. Tests of the
# refusals set their own (empty) list.
WEBHOOK_ALLOWED_HOSTS = ("127.0.0.1/32",)

# A model that will never answer /ping fails its endpoint in seconds, not minutes.
ENDPOINT_STARTUP_TIMEOUT_SECONDS = 30
