"""Django settings. Everything a deployment may change comes from `studio.config`."""

from __future__ import annotations

from pathlib import Path

from django.utils.csp import CSP

from studio.config import celery_broker_url, load_config

CONFIG = load_config()
BASE_DIR = Path(__file__).resolve().parent.parent
STUDIOLO_HOME = CONFIG.home

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = CONFIG.allowed_hosts
CSRF_TRUSTED_ORIGINS = CONFIG.csrf_trusted_origins

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "studio.accounts",
    "studio.audit",
    "studio.webhooks",
    "compute",
    "experiments",
    "jobs",
    "registry",
    "endpoints",
    "transform",
    "pipelines",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "studio.urls"
ASGI_APPLICATION = "studio.asgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "frontend.context_processors.studio",
            ],
        },
    },
]

DATABASES = {"default": CONFIG.database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Filled by `collectstatic` in the server image; whitenoise also serves from the finders.
STATIC_ROOT = CONFIG.home / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Third-party browser assets (plotly.js) come from their installed Python packages.
    "frontend.staticfinders.PackageAssetFinder",
]
# Serve straight from the finders: no collectstatic step for the embedded start.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- HTTP security: cookies, HSTS, trusted proxies, Content-Security-Policy -------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CONFIG.proxy_security.secure_cookies
# Sent by SecurityMiddleware on HTTPS answers only (HTTPS as the trusted proxy says, see asgi.py).
SECURE_HSTS_SECONDS = CONFIG.proxy_security.hsts_seconds
# Whose X-Forwarded-For / X-Forwarded-Proto studio.asgi believes (empty: nobody's).
TRUSTED_PROXIES = CONFIG.proxy_security.trusted_proxies
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Every page: scripts, styles, images and connections (fetch, websockets) from the studio
# itself only; no inline script or style, no eval, no plugins; no page in a frame. plotly.js's
# stylesheet is a file (frontend/_plotly_styles.html); its colour bars write an empty style
# attribute, the one inline style allowed (by the hash of "").
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "style-src-attr": [CSP.UNSAFE_HASHES, EMPTY_STYLE_HASH],
    "img-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "studio.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "studio.api.schema.StudioAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "studio.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "studio.api.exceptions.exception_handler",
    # JSON bounded in size and depth (studio/api/parsers.py); forms as DRF reads them (Django
    # bounds them); uploads declare their own raw-body parser.
    "DEFAULT_PARSER_CLASSES": [
        "studio.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Studiolo API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

REDIS_URL = CONFIG.redis_url
REDIS_EMBEDDED = CONFIG.redis_embedded
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels_redis blocks 5 s per BZPOPMIN; redis-py 8's default read timeout is as
            # short, so every idle websocket died with "Timeout reading from socket".
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "prefix": "studiolo:ws",
            "capacity": 1000,
            "expiry": 30,
        },
    },
}

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
# Jobs go to one queue per instance type (added by the jobs app); everything else here.
CELERY_TASK_DEFAULT_QUEUE = "default"
# Endpoint operations have a queue of their own, so a long deployment never delays the
# heartbeat or webhooks (every `studiolo worker` consumes it).
CELERY_TASK_ROUTES = {"endpoints.*": {"queue": "endpoints"}}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis that goes away (restarted, or the embedded one restarted by `studiolo up`) is
# waited for, however long: workers and beat reconnect, they never give up and exit.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# No remote control (nothing here uses it) and no monitoring events: their fanout channels
# are what broke on a lost connection (see studio/cli/server.py, WORKER_WITHOUT).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# A task running when the connection drops carries on (Celery 6 would cancel it): a job must
# not be torn down by a Redis blip. Its acknowledgement is lost with the connection, so the
# message comes back after the visibility timeout and finds the job finished (a no-op).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A task not acknowledged within this time is handed to another worker; long jobs are
    # re-attached by their container labels, so this only bounds how long a lost task waits.
    "visibility_timeout": 3600,
    # A Redis that stops answering (frozen, or gone without closing the socket) is noticed
    # within seconds rather than hanging a publish (an API request) or the consumer;
    # reads block at most 1 s (kombu's BRPOP timeout), so 10 s never cuts a healthy one.
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "health_check_interval": 25,
}
CELERY_TASK_TIME_LIMIT = 60 * 60 * 24 * 29  # just above SageMaker's 28-day MaxRuntime
CELERY_BEAT_SCHEDULE_FILENAME = str(CONFIG.home / "run" / "celerybeat-schedule")

ARTIFACT_STORE = CONFIG.artifact_store
S3_ENDPOINT_URL = CONFIG.s3_endpoint_url
AWS_REGION = CONFIG.aws_region
RUNTIME = CONFIG.runtime
INSTANCE_TYPES = CONFIG.instance_types
JOBS_WORK_DIR = CONFIG.jobs_work_dir
ARCHIVE_MAX_EXPANDED_MB = CONFIG.archive_max_expanded_mb
ARCHIVE_MAX_FILES = CONFIG.archive_max_files
ARCHIVE_MAX_RATIO = CONFIG.archive_max_ratio
JOB_STOP_GRACE_SECONDS = CONFIG.job_stop_grace_seconds
JOB_LEASE_SECONDS = CONFIG.job_lease_seconds
CHECKPOINT_SYNC_SECONDS = CONFIG.checkpoint_sync_seconds
ENDPOINT_STARTUP_TIMEOUT_SECONDS = CONFIG.endpoint_startup_timeout_seconds
ENDPOINT_INVOCATION_TIMEOUT_SECONDS = CONFIG.endpoint_invocation_timeout_seconds
ENDPOINT_HEALTH_CHECK_SECONDS = CONFIG.endpoint_health_check_seconds
ENDPOINT_NETWORK = CONFIG.endpoint_network
TRACKING_RETENTION_DAYS = CONFIG.tracking_retention_days
WEB_THREADS = CONFIG.web_threads
WEBHOOK_ALLOWED_HOSTS = CONFIG.webhook_allowed_hosts
CONTAINER_PIDS_LIMIT = CONFIG.container_pids_limit
CONTAINER_TMP_PERCENT = CONFIG.container_tmp_percent
SEARCH_TIMEOUT_SECONDS = CONFIG.search_timeout_seconds
SEARCH_MAX_PATTERN_LENGTH = CONFIG.search_max_pattern_length

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "studio.logging.StderrHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # One line per task received/succeeded drowns the worker's output (heartbeats).
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        # The CLI's HTTP client logs every request at INFO.
        "httpx": {"level": "WARNING"},
    },
}
