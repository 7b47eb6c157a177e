"""Configuration from environment variables, with defaults that run as they are."""
import os
import secrets


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _int(name, default):
    return int(_env(name, default))


def _list(name, default=""):
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


def _bool(name, default):
    return str(_env(name, default)).lower() in ("1", "true", "yes", "on")


class Config:
    """Production-ready defaults; every setting can be overridden by an environment variable."""

    # Unset, the app factory replaces this random value with a key generated once into the
    # instance folder, so that every worker and every restart signs alike (only a TESTING app
    # keeps the random one). Old keys go in SECRET_KEY_FALLBACKS (comma list): they still
    # verify, only SECRET_KEY signs.
    SECRET_KEY = _env("SECRET_KEY") or secrets.token_hex(32)
    SECRET_KEY_FALLBACKS = _list("SECRET_KEY_FALLBACKS")

    # None means "SQLite in the instance folder", resolved by the app factory.
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = _env("REDIS_URL")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Forced on by the app factory when PUBLIC_URL is https; when on, responses send HSTS.
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    PUBLIC_URL = _env("PUBLIC_URL")  # e.g. https://callme.example; derived from requests when unset
    HSTS_MAX_AGE = _int("HSTS_MAX_AGE", 365 * 24 * 3600)
    # The longest a login lasts (seconds); logging out ends it sooner (see security.py).
    PERMANENT_SESSION_LIFETIME = _int("SESSION_LIFETIME", 31 * 24 * 3600)

    # Calls and metering (seconds unless said otherwise).
    CALL_TOKEN_TTL = _int("CALL_TOKEN_TTL", 120)
    JOIN_TIMEOUT = _int("JOIN_TIMEOUT", 10)  # created -> the visitor's socket joined; else it ends "expired"
    RING_TIMEOUT = _int("RING_TIMEOUT", 30)
    CONNECT_TIMEOUT = _int("CONNECT_TIMEOUT", 60)  # accepted -> both peers connected
    HEARTBEAT_INTERVAL = _int("HEARTBEAT_INTERVAL", 5)  # what clients are told to send
    PRESENCE_TTL = _int("PRESENCE_TTL", 30)
    SILENCE_GRACE = _int("SILENCE_GRACE", 30)
    HEARTBEAT_PERSIST = _int("HEARTBEAT_PERSIST", 5)
    METER_INTERVAL = float(_env("METER_INTERVAL", 1.0))
    CAP_WARNINGS = [int(s) for s in _list("CAP_WARNINGS", "120,60,30")]
    DEFAULT_FREE_SECONDS = _int("DEFAULT_FREE_SECONDS", 60)
    DEFAULT_CAP_MINUTES = _int("DEFAULT_CAP_MINUTES", 60)
    MAX_FRAME_BYTES = _int("MAX_FRAME_BYTES", 64 * 1024)

    # Request bodies: at most MAX_CONTENT_LENGTH bytes (413 unread; a view may set its own
    # limit, see web/limits.max_body), sent within BODY_TIMEOUT seconds (408).
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
    BODY_TIMEOUT = float(_env("BODY_TIMEOUT", 10))

    # Abuse limits: "count/seconds".
    RATE_LIMIT_CALLS = _env("RATE_LIMIT_CALLS", "10/60")
    RATE_LIMIT_RINGS = _env("RATE_LIMIT_RINGS", "30/60")
    RATE_LIMIT_LOGIN = _env("RATE_LIMIT_LOGIN", "10/60")

    # ICE servers handed to both peers. Empty by default: no public STUN/TURN is ever assumed.
    STUN_URLS = _list("STUN_URLS")
    TURN_URLS = _list("TURN_URLS")
    TURN_SECRET = _env("TURN_SECRET")
    TURN_TTL = _int("TURN_TTL", 3600)

    # flask-sock: a hard transport limit above the protocol's own frame limit, and pings
    # so that dead TCP connections are noticed.
    SOCK_SERVER_OPTIONS = {"ping_interval": 25, "max_message_size": 1024 * 1024}
    # permessage-deflate costs ~100 KB of zlib state per socket; frames are a few hundred bytes.
    WEBSOCKET_COMPRESSION = _bool("WEBSOCKET_COMPRESSION", False)

    # PayPal. Each expert connects their own REST app; these settings are the operator's.
    # PAYPAL_BASE_URL replaces PayPal's API address (the emulator in tests and the demo).
    PAYPAL_BASE_URL = _env("PAYPAL_BASE_URL")
    # A Fernet key (Fernet.generate_key()) for the experts' PayPal secrets at rest; when unset,
    # one is derived from SECRET_KEY (HKDF-SHA256), so changing SECRET_KEY then needs the old
    # one in SECRET_KEY_FALLBACKS. Old Fernet keys go in PAYPAL_ENCRYPTION_KEY_FALLBACKS.
    PAYPAL_ENCRYPTION_KEY = _env("PAYPAL_ENCRYPTION_KEY")
    PAYPAL_ENCRYPTION_KEY_FALLBACKS = _list("PAYPAL_ENCRYPTION_KEY_FALLBACKS")
    PAYPAL_TIMEOUT = _int("PAYPAL_TIMEOUT", 15)
    # Captures and voids that failed are retried by the clock every PAYMENTS_RETRY_INTERVAL
    # seconds, each after a backoff of RETRY_BASE * 2^(attempts-1) up to RETRY_MAX, at most
    # MAX_ATTEMPTS times (then `callme payments retry --all`). Holds that never became a call
    # are voided after PAYMENTS_ORPHAN_HOLD seconds.
    PAYMENTS_RETRY_INTERVAL = _int("PAYMENTS_RETRY_INTERVAL", 30)
    PAYMENTS_RETRY_BASE = _int("PAYMENTS_RETRY_BASE", 10)
    PAYMENTS_RETRY_MAX = _int("PAYMENTS_RETRY_MAX", 3600)
    PAYMENTS_MAX_ATTEMPTS = _int("PAYMENTS_MAX_ATTEMPTS", 12)
    PAYMENTS_ORPHAN_HOLD = _int("PAYMENTS_ORPHAN_HOLD", 3600)
    PAYMENTS_SETTLE_ASYNC = True

    # Where embed/ and widget/ live (the repository root by default).
    ASSETS_DIR = _env("CALLME_ASSETS", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

    # Mail (sign-up links, password resets). With no MAIL_SMTP_HOST, mail is only kept in the
    # database and shown on the local mailbox page (/dev/mailbox?key=..., the key printed by
    # `callme demo` and `callme mail mailbox`); MAIL_MAILBOX=0 hides that page. MAIL_SMTP_TLS is
    # none, starttls or ssl; the port defaults to 25, 587 or 465 by it. MAIL_SMTP_CAFILE trusts a
    # private CA (the system's CAs otherwise).
    MAIL_SMTP_HOST = _env("MAIL_SMTP_HOST")
    MAIL_SMTP_PORT = _int("MAIL_SMTP_PORT", 0) or None
    MAIL_SMTP_TLS = _env("MAIL_SMTP_TLS", "starttls")
    MAIL_SMTP_USER = _env("MAIL_SMTP_USER")
    MAIL_SMTP_PASSWORD = _env("MAIL_SMTP_PASSWORD")
    MAIL_SMTP_CAFILE = _env("MAIL_SMTP_CAFILE")
    MAIL_SMTP_TIMEOUT = _int("MAIL_SMTP_TIMEOUT", 20)
    MAIL_FROM = _env("MAIL_FROM")  # default: callme <no-reply@the PUBLIC_URL's host, or localhost>
    MAIL_MAILBOX = _bool("MAIL_MAILBOX", True)
    # The outbox: sent right after the commit that queued it (in the background unless
    # MAIL_SEND_ASYNC is off); failures retried by the clock every MAIL_RETRY_INTERVAL seconds,
    # each after MAIL_RETRY_BASE * 2^(attempts-1) up to MAIL_RETRY_MAX, at most MAIL_MAX_ATTEMPTS
    # times (then `callme mail retry`). Sent mail is deleted after MAIL_KEEP_DAYS.
    MAIL_SEND_ASYNC = _bool("MAIL_SEND_ASYNC", True)
    MAIL_RETRY_INTERVAL = _int("MAIL_RETRY_INTERVAL", 30)
    MAIL_RETRY_BASE = _int("MAIL_RETRY_BASE", 30)
    MAIL_RETRY_MAX = _int("MAIL_RETRY_MAX", 3600)
    MAIL_MAX_ATTEMPTS = _int("MAIL_MAX_ATTEMPTS", 30)
    MAIL_KEEP_DAYS = _int("MAIL_KEEP_DAYS", 30)
    # Self-service sign-up (SIGNUP_OPEN=0: only `callme expert create` makes experts) and its links.
    SIGNUP_OPEN = _bool("SIGNUP_OPEN", True)
    VERIFY_LINK_TTL = _int("VERIFY_LINK_TTL", 2 * 24 * 3600)
    RESET_LINK_TTL = _int("RESET_LINK_TTL", 3600)
    RATE_LIMIT_SIGNUP = _env("RATE_LIMIT_SIGNUP", "10/3600")  # sign-ups per client address
    RATE_LIMIT_MAIL = _env("RATE_LIMIT_MAIL", "10/600")       # mail-sending forms per client address
    RATE_LIMIT_MAIL_TO = _env("RATE_LIMIT_MAIL_TO", "3/3600")  # mails asked for one address
    # Uploaded media (profile photos under photos/), served at /media/...; None means
    # <instance folder>/media, resolved when first used.
    MEDIA_DIR = _env("MEDIA_DIR")
    # Intro videos (experts/media.py): MP4 (H.264 + AAC or silent) or WebM (VP8/VP9 + Opus/Vorbis
    # or silent), judged by content in a probe subprocess killed after VIDEO_PROBE_TIMEOUT seconds.
    # At most VIDEO_MAX_BYTES, VIDEO_MAX_SECONDS long and VIDEO_MAX_WIDTH x VIDEO_MAX_HEIGHT
    # either way up (1920x1080 fits 1080x1920 too). Stored under random names in VIDEO_DIR
    # (unset: <MEDIA_DIR or instance/media>/videos, with the posters). The upload's body may take
    # VIDEO_BODY_TIMEOUT seconds (instead of BODY_TIMEOUT); RATE_LIMIT_VIDEO: uploads per expert.
    VIDEO_DIR = _env("VIDEO_DIR")
    VIDEO_MAX_BYTES = _int("VIDEO_MAX_BYTES", 50 * 1024 * 1024)
    VIDEO_MAX_SECONDS = _int("VIDEO_MAX_SECONDS", 120)
    VIDEO_MAX_WIDTH = _int("VIDEO_MAX_WIDTH", 1920)
    VIDEO_MAX_HEIGHT = _int("VIDEO_MAX_HEIGHT", 1080)
    VIDEO_PROBE_TIMEOUT = float(_env("VIDEO_PROBE_TIMEOUT", 10))
    VIDEO_BODY_TIMEOUT = float(_env("VIDEO_BODY_TIMEOUT", 300))
    RATE_LIMIT_VIDEO = _env("RATE_LIMIT_VIDEO", "30/3600")
    # Custom domains. DNS_RESOLVER: the nameserver that checks the TXT records ("ip" or "ip:port",
    # e.g. "127.0.0.1:5353"); unset, the system's resolver. Verified domains are re-checked every
    # DOMAIN_RECHECK seconds (0: never in the background); one that lost its record stops being
    # served. TLS_ASK_FROM: the client addresses (or networks) that may ask /_internal/tls-ask.
    DNS_RESOLVER = _env("DNS_RESOLVER")
    DNS_TIMEOUT = float(_env("DNS_TIMEOUT", 5))
    DOMAIN_RECHECK = _int("DOMAIN_RECHECK", 3600)
    DOMAIN_HOST_CACHE = float(_env("DOMAIN_HOST_CACHE", 5))  # seconds a process keeps a Host's lookup
    TLS_ASK_FROM = _list("TLS_ASK_FROM", "127.0.0.1,::1")
    RATE_LIMIT_DOMAIN_CHECK = _env("RATE_LIMIT_DOMAIN_CHECK", "6/60")
    # Ratings after paid sessions (reviews.py): a paid call may be rated within RATING_WINDOW_DAYS
    # of its end (the rating link lives as long); the profile shows the RATING_RECENT newest.
    RATING_WINDOW_DAYS = _int("RATING_WINDOW_DAYS", 14)
    RATING_RECENT = _int("RATING_RECENT", 10)
    RATE_LIMIT_RATING = _env("RATE_LIMIT_RATING", "30/600")  # rating form posts per client address

    # The background clock (ring time-outs, silence, cap, meter frames). Off for unit tests.
    START_CLOCK = True


class TestConfig(Config):
    """A throw-away database and short timers."""

    TESTING = True
    SECRET_KEY = "test-secret"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    RATE_LIMIT_CALLS = "1000/60"
    RATE_LIMIT_RINGS = "1000/60"
    RATE_LIMIT_LOGIN = "1000/60"
    START_CLOCK = False
    PAYMENTS_SETTLE_ASYNC = False
