"""Settings from the environment (12-factor), read with django-environ.

With ``DEBUG`` on, development defaults fill in the secrets; with it off, every secret
must come from the environment and a missing one stops start-up naming it.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development only: used when DEBUG is on and the variable is unset.
_DEV_SECRETS = {
    "SECRET_KEY": "dev-insecure-secret-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz",  # nosec B105
    "PHONE_HASH_KEY": "dev-insecure-phone-hash-key",
    "CUSTOMER_JWT_KEY": "dev-insecure-customer-jwt-key-at-least-32-bytes-long",
    "VOUCHER_CODE_KEY": "dev-insecure-voucher-code-key",
}


def _secret(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return _DEV_SECRETS[name]
    raise ImproperlyConfigured(
        f"{name} is not set. Set it in the environment (DEBUG is off, so no development "
        "default is used)."
    )


SECRET_KEY = _secret("SECRET_KEY")
PHONE_HASH_KEY = _secret("PHONE_HASH_KEY")
CUSTOMER_JWT_KEY = _secret("CUSTOMER_JWT_KEY")
VOUCHER_CODE_KEY = _secret("VOUCHER_CODE_KEY")
# Customer JWTs: verified against the identity provider's key set (JWKS, keys chosen by
# ``kid``) when CUSTOMER_JWT_JWKS_URL is set, else against the static CUSTOMER_JWT_KEY
# (development). The key set is cached for CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS; a token naming
# a key the cache does not hold fetches it again, at most once per
# CUSTOMER_JWT_JWKS_REFRESH_SECONDS.
CUSTOMER_JWT_JWKS_URL = env.str("CUSTOMER_JWT_JWKS_URL", default="")
CUSTOMER_JWT_ISSUER = env.str("CUSTOMER_JWT_ISSUER", default="")
CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS = env.float("CUSTOMER_JWT_JWKS_LIFESPAN_SECONDS", default=300.0)
CUSTOMER_JWT_JWKS_REFRESH_SECONDS = env.float("CUSTOMER_JWT_JWKS_REFRESH_SECONDS", default=30.0)
CUSTOMER_JWT_ALGORITHM = env.str("CUSTOMER_JWT_ALGORITHM",
                                 default="RS256" if CUSTOMER_JWT_JWKS_URL else "HS256")
CUSTOMER_JWT_AUDIENCE = env.str("CUSTOMER_JWT_AUDIENCE", default="voucher-service")
if CUSTOMER_JWT_JWKS_URL and (CUSTOMER_JWT_ALGORITHM.startswith("HS") or not CUSTOMER_JWT_ISSUER):
    raise ImproperlyConfigured(
        "CUSTOMER_JWT_JWKS_URL needs CUSTOMER_JWT_ISSUER and a public-key "
        "CUSTOMER_JWT_ALGORITHM (RS256, ES256, ...): a key set publishes no HMAC secret."
    )
# Minting customer tokens is a development convenience only.
CUSTOMER_JWT_DEV_MINTING = env.bool("CUSTOMER_JWT_DEV_MINTING", default=DEBUG)
# Single-person approval of issuance runs (the issue_vouchers command), development only.
ALLOW_SELF_APPROVAL = env.bool("ALLOW_SELF_APPROVAL", default=DEBUG)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "voucher_service",
    "accounts",
    "vouchers",
    "vouchers.campaigns",
    "vouchers.eligibility",
    "vouchers.issuance",
    "vouchers.redemption",
    "vouchers.finance",
    "vouchers.appeals",
]

MIDDLEWARE = [
    "voucher_service.middleware.RequestIdMiddleware",
    "voucher_service.middleware.BodySizeLimitMiddleware",
    "voucher_service.middleware.ProblemExceptionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/voucher_service"
    ),
}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
# One configuration, direct or through a pooler in transaction mode (PgBouncer): a
# server-side cursor of a query outside a transaction would outlive it (WITH HOLD) on a
# server connection the next statement may not get. Prepared statements are off too
# (Django's default with psycopg 3: ``prepare_threshold`` None).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="vs"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            # A cache outage must not take the service down: reads fall back to PostgreSQL.
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "voucher_service.cache"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "dashboard-login"
LOGIN_REDIRECT_URL = "dashboard"

# Request bodies over 1 MiB are refused with 413 (BodySizeLimitMiddleware).
MAX_REQUEST_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "voucher_service.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        "customer_check": env.str("THROTTLE_CUSTOMER_CHECK", default="60/min"),
        "ip_check": env.str("THROTTLE_IP_CHECK", default="600/min"),
        "claim_customer": env.str("THROTTLE_CLAIM_CUSTOMER", default="5/hour"),
        "claim_phone": env.str("THROTTLE_CLAIM_PHONE", default="3/hour"),
        "claim_ip": env.str("THROTTLE_CLAIM_IP", default="30/hour"),
        "appeal_customer": env.str("THROTTLE_APPEAL_CUSTOMER", default="5/hour"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Breach compensation voucher service",
    "DESCRIPTION": "Eligibility, issuance, redemption and finance audit of compensation vouchers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "voucher_service.schema.add_problem_responses",
    ],
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Exactly one scheduler (config/beat.py): beat keeps its schedule in the broker's Redis
# (RedBeat) and sends due jobs only while it holds the lock there; a second beat waits for
# the lock, and takes over within BEAT_LOCK_TIMEOUT_SECONDS of the first one's death. Beat
# wakes at least five times per lock timeout, renewing the lock each time.
CELERY_BEAT_SCHEDULER = "config.beat.SingleBeatScheduler"
CELERY_REDBEAT_REDIS_URL = CELERY_BROKER_URL
CELERY_REDBEAT_LOCK_TIMEOUT = env.int("BEAT_LOCK_TIMEOUT_SECONDS", default=30)
CELERY_BEAT_MAX_LOOP_INTERVAL = max(1, CELERY_REDBEAT_LOCK_TIMEOUT // 5)

SMS_BACKEND = env.str("SMS_BACKEND", default="console")
SMS_FILE_PATH = env.str("SMS_FILE_PATH", default=str(BASE_DIR / "var" / "sms"))
SMS_HTTP_URL = env.str("SMS_HTTP_URL", default="")
SMS_HTTP_TOKEN = env.str("SMS_HTTP_TOKEN", default="")

ISSUANCE_CHUNK_SIZE = env.int("ISSUANCE_CHUNK_SIZE", default=10_000)
# Connections a registry import types and loads on at once: the database server's cores.
REGISTRY_IMPORT_CONNECTIONS = env.int("REGISTRY_IMPORT_CONNECTIONS", default=2)
AUTHORIZATION_TTL_SECONDS = env.int("AUTHORIZATION_TTL_SECONDS", default=7 * 24 * 3600)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "voucher_service.logging.RequestIdFilter"},
        "one_line_exception": {"()": "voucher_service.logging.OneLineExceptionFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        },
        "console_one_line": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "one_line_exception"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # A Redis outage is logged once per cache call: one line each, no traceback.
        DJANGO_REDIS_LOGGER: {"handlers": ["console_one_line"], "propagate": False},
    },
}

# Audit trail: parallel hash chains, an event in its target's chain (voucher_service.audit).
# Changing it later is safe: existing events keep their chain numbers and links.
AUDIT_CHAINS = env.int("AUDIT_CHAINS", default=32)
# The sealer links events every AUDIT_SEAL_INTERVAL_SECONDS (voucher_service/schedule.py);
# verify_audit_chain fails on an event left unsealed longer than this.
AUDIT_SEAL_MAX_LAG_SECONDS = env.int("AUDIT_SEAL_MAX_LAG_SECONDS", default=300)

# Issuance
# Chunks in flight per run (sent to the broker, not yet done): pause and cancel take effect
# within this many chunks.
ISSUANCE_MAX_IN_FLIGHT = env.int("ISSUANCE_MAX_IN_FLIGHT", default=8)
ISSUANCE_CHUNK_MAX_RETRIES = env.int("ISSUANCE_CHUNK_MAX_RETRIES", default=8)
ISSUANCE_RETRY_BACKOFF_SECONDS = env.float("ISSUANCE_RETRY_BACKOFF_SECONDS", default=1.0)
ISSUANCE_RETRY_BACKOFF_MAX_SECONDS = env.float("ISSUANCE_RETRY_BACKOFF_MAX_SECONDS", default=60.0)
# A chunk claimed this long ago whose row nobody holds locked has lost its worker.
ISSUANCE_CHUNK_STALE_SECONDS = env.int("ISSUANCE_CHUNK_STALE_SECONDS", default=120)
# A dispatched chunk not claimed within this long lost its message (broker restart).
ISSUANCE_DISPATCH_STALE_SECONDS = env.int("ISSUANCE_DISPATCH_STALE_SECONDS", default=600)
# Customer messaging (by customer id; the shop resolves the address): "log" or "file".
CUSTOMER_MESSAGING_BACKEND = env.str("CUSTOMER_MESSAGING_BACKEND", default="log")
CUSTOMER_MESSAGING_FILE_PATH = env.str(
    "CUSTOMER_MESSAGING_FILE_PATH", default=str(BASE_DIR / "var" / "customer-messages.jsonl")
)
# Outbox drain: at most this many messages per drain (every minute), this many per second.
ISSUANCE_NOTIFY_BATCH_SIZE = env.int("ISSUANCE_NOTIFY_BATCH_SIZE", default=1000)
ISSUANCE_NOTIFY_RATE_PER_SECOND = env.float("ISSUANCE_NOTIFY_RATE_PER_SECOND", default=50.0)
ISSUANCE_EXPIRY_REMINDER_DAYS = env.int("ISSUANCE_EXPIRY_REMINDER_DAYS", default=30)

# Redemption
# A request whose Idempotency-Key is still in flight in another request waits this long for
# that one to finish (then replays its answer), else answers 409 idempotency_key_in_use.
IDEMPOTENCY_KEY_WAIT_MS = env.int("IDEMPOTENCY_KEY_WAIT_MS", default=5000)
# Daily expiry: a sweep records its cutoff under the sweep lock taken exclusively, which
# waits for the writers in flight; it gives up after this long (checkouts queue behind it)
# and tries again, this many times, before leaving the sweep to the task's retry.
EXPIRY_LOCK_TIMEOUT_MS = env.int("EXPIRY_LOCK_TIMEOUT_MS", default=200)
EXPIRY_LOCK_ATTEMPTS = env.int("EXPIRY_LOCK_ATTEMPTS", default=10)
# Redemption statuses appear in several schema components: one enum name for all of them.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update({
    "RedemptionStatusEnum": "vouchers.redemption.models.RedemptionStatus",
    "AppealStatusEnum": "vouchers.appeals.models.AppealStatus",
})

# Eligibility check, closed-account claims, throttles
# Cached eligibility answers live this long unless a writer fences them sooner (see
# vouchers/eligibility/cache.py); after a change, checks read PostgreSQL for the fence's time.
ELIGIBILITY_CACHE_SECONDS = env.int("ELIGIBILITY_CACHE_SECONDS", default=300)
ELIGIBILITY_CACHE_FENCE_SECONDS = env.int("ELIGIBILITY_CACHE_FENCE_SECONDS", default=10)
ELIGIBILITY_CAMPAIGN_CACHE_SECONDS = env.int("ELIGIBILITY_CAMPAIGN_CACHE_SECONDS", default=60)
CLAIM_CODE_TTL_SECONDS = env.int("CLAIM_CODE_TTL_SECONDS", default=600)
SMS_HTTP_CONNECT_TIMEOUT_SECONDS = env.float("SMS_HTTP_CONNECT_TIMEOUT_SECONDS", default=3.0)
SMS_HTTP_READ_TIMEOUT_SECONDS = env.float("SMS_HTTP_READ_TIMEOUT_SECONDS", default=10.0)
SMS_HTTP_RETRIES = env.int("SMS_HTTP_RETRIES", default=3)
SMS_HTTP_BACKOFF_SECONDS = env.float("SMS_HTTP_BACKOFF_SECONDS", default=0.5)
# Proxies whose X-Forwarded-For entries the throttles trust; 0: the socket's peer address.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("NUM_PROXIES", default=0)
