"""An expert's own domains: adding one, the DNS records that prove it, checking them, and which
verified domain serves which expert.

An expert adds ``call.ann-law.example``; callme shows two records to create at their DNS host:
a CNAME pointing the name at callme's host (the host of PUBLIC_URL), and a TXT record
``_callme-challenge.call.ann-law.example`` holding a random token. A check asks the resolver
(``DNS_RESOLVER``, else the system's) for that TXT record. States (``TRANSITIONS``):

    pending  -> verified (the TXT record holds the token) | failed (with the reason)
    verified -> verified (still there)                     | failed (lost: no longer served)
    failed   -> verified (fixed)                           | failed

Each move is a compare-and-set on the state it was read in, like the other state machines, so
two checks racing (the background re-check, "check now") never undo each other. Only verified
domains are served (``site_for``) and get a certificate (``is_verified``, for Caddy's ask).
"""
import ipaddress
import logging
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import idna
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..errors import CallmeError
from ..extensions import db
from ..models import Expert, utcnow

log = logging.getLogger(__name__)

STATES = ("pending", "verified", "failed")
TRANSITIONS = {
    "pending": {"verified", "failed"},
    "verified": {"verified", "failed"},
    "failed": {"verified", "failed"},
}
CHALLENGE = "_callme-challenge"
MAX_DOMAIN = 253          # a DNS name, in its ASCII (punycode) form
MAX_LABEL = 63
MAX_INPUT = 300           # what a form may send before we even try
MAX_PER_EXPERT = 5
LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# The reasons a check fails, as shown to the expert.
REASONS = {
    "nxdomain": "The name {name} does not exist in DNS (NXDOMAIN).",
    "no_txt": "{name} has no TXT record.",
    "wrong_token": "The TXT record at {name} does not hold this domain's token.",
    "timeout": "The DNS server did not answer in time.",
    "dns_error": "The DNS lookup failed.",
}


class CustomDomain(db.Model):
    __tablename__ = "custom_domains"
    __table_args__ = (
        sa.CheckConstraint(f"state IN {STATES!r}", name="ck_custom_domains_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    # Lowercase ASCII (IDNA, punycode), no trailing dot: the Host header's form; unique across experts.
    domain: Mapped[str] = mapped_column(sa.String(MAX_DOMAIN), unique=True)
    token: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    failure: Mapped[str | None] = mapped_column(sa.String(32))   # a key of REASONS
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    last_checked_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    @property
    def challenge_name(self):
        return f"{CHALLENGE}.{self.domain}"

    @property
    def unicode_name(self):
        try:
            return idna.decode(self.domain)
        except idna.IDNAError:
            return self.domain

    @property
    def failure_text(self):
        return REASONS.get(self.failure or "", "").format(name=self.challenge_name) or None

    def __repr__(self):
        return f"<CustomDomain {self.domain} {self.state}>"


class DomainError(CallmeError):
    """A domain callme refuses (400), or one another expert has (409)."""


class IllegalTransition(ValueError):
    pass


# ---- names -------------------------------------------------------------------------------------

def own_host(config):
    """callme's own host name (PUBLIC_URL's), or None when PUBLIC_URL is unset."""
    url = config.get("PUBLIC_URL")
    return (urlsplit(url).hostname or "").lower().rstrip(".") or None if url else None


def normalise(raw, config):
    """The domain as stored (lowercase ASCII, IDNA-encoded), or DomainError saying what is wrong."""
    if not isinstance(raw, str) or not raw.strip():
        raise DomainError("domain_invalid", "Enter a domain name, like call.example.com.")
    if len(raw) > MAX_INPUT:
        raise DomainError("domain_invalid", "That name is too long for a domain.")
    name = raw.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if "://" in name or "/" in name or ":" in name or "@" in name or " " in name:
        raise DomainError("domain_invalid",
                          "Enter the name alone (call.example.com), without http://, a path or a port.")
    try:
        ipaddress.ip_address(name.strip("[]"))
        raise DomainError("domain_invalid", "Enter a domain name, not an IP address.")
    except ValueError:
        pass
    try:
        name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise DomainError("domain_invalid", "That is not a valid domain name.") from None
    labels = name.split(".")
    if len(name) > MAX_DOMAIN or any(len(label) > MAX_LABEL for label in labels):
        raise DomainError("domain_invalid", "That name is too long for a domain.")
    if len(labels) < 2 or not all(LABEL_RE.match(label) for label in labels):
        raise DomainError("domain_invalid", "That is not a valid domain name (it needs a dot, like call.example.com).")
    if labels[-1].isdigit():
        raise DomainError("domain_invalid", "Enter a domain name, not an IP address.")
    own = own_host(config)
    if own and (name == own or name.endswith("." + own)):
        raise DomainError("domain_invalid", f"{name} is callme's own name; add a domain of yours.")
    return name


def host_of(value):
    """A Host header's name: lowercase, without port or trailing dot ('' when absent)."""
    value = (value or "").strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0].rstrip(".") if value else ""


# ---- the expert's domains ----------------------------------------------------------------------

def domains_of(expert_id):
    return db.session.scalars(sa.select(CustomDomain).where(CustomDomain.expert_id == expert_id)
                              .order_by(CustomDomain.id)).all()


def add_domain(expert, raw, config):
    """Add a domain (pending) with a fresh token; the caller shows its records."""
    name = normalise(raw, config)
    if db.session.scalar(sa.select(CustomDomain.id).where(CustomDomain.domain == name)) is not None:
        raise DomainError("domain_taken", f"{name} is already added here.", status=409)
    if len(domains_of(expert.id)) >= MAX_PER_EXPERT:
        raise DomainError("too_many_domains", f"You can add at most {MAX_PER_EXPERT} domains.", status=409)
    domain = CustomDomain(expert_id=expert.id, domain=name, token=secrets.token_urlsafe(24), state="pending")
    db.session.add(domain)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # another expert added it at the same moment
        db.session.rollback()
        raise DomainError("domain_taken", f"{name} is already added here.", status=409) from None
    forget_sites()
    return domain


def domain_of(expert, domain_id):
    """One of the expert's domains, or 404 (another expert's domain is not found either)."""
    try:
        domain_id = int(domain_id)
    except (TypeError, ValueError):
        domain_id = 0
    domain = db.session.get(CustomDomain, domain_id) if 0 < domain_id < 2 ** 31 else None
    if domain is None or domain.expert_id != expert.id:
        raise DomainError("domain_not_found", "There is no such domain among yours.", status=404)
    return domain


def remove_domain(expert, domain_id):
    domain = domain_of(expert, domain_id)
    db.session.delete(domain)
    db.session.commit()
    forget_sites()


def records(domain, config, host=None):
    """The two DNS records the expert creates: (type, name, value). ``host``: callme's host when
    PUBLIC_URL is unset (the one the page was asked on)."""
    target = own_host(config) or host_of(host) or "callme.example"
    return [("CNAME", domain.domain, target), ("TXT", domain.challenge_name, domain.token)]


# ---- checking ----------------------------------------------------------------------------------

def resolver(config):
    """dnspython's resolver: ``DNS_RESOLVER`` ("ip" or "ip:port", "[v6]:port") or the system's."""
    import dns.resolver

    setting = (config.get("DNS_RESOLVER") or "").strip()
    if not setting:
        r = dns.resolver.Resolver()
    else:
        r = dns.resolver.Resolver(configure=False)
        host, port = setting, 53
        if setting.startswith("["):
            host, _, rest = setting[1:].partition("]")
            port = int(rest.lstrip(":") or 53)
        elif setting.count(":") == 1:
            host, port = setting.split(":")
            port = int(port)
        r.nameservers, r.port = [host], port
    r.lifetime = r.timeout = float(config.get("DNS_TIMEOUT", 5))
    r.cache = None
    return r


def lookup(domain, config):
    """Ask DNS for the challenge record: None when it holds the token, else the failure's key."""
    import dns.exception
    import dns.resolver

    try:
        answer = resolver(config).resolve(domain.challenge_name, "TXT", search=False)
    except dns.resolver.NXDOMAIN:
        return "nxdomain"
    except dns.resolver.NoAnswer:
        return "no_txt"
    except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
        return "timeout"
    except (dns.exception.DNSException, OSError, ValueError) as e:
        log.info("DNS lookup of %s failed: %r", domain.challenge_name, e)
        return "dns_error"
    texts = {b"".join(rdata.strings).decode("utf-8", "replace").strip() for rdata in answer}
    if not texts:
        return "no_txt"
    ok = any(secrets.compare_digest(text.encode(), domain.token.encode()) for text in texts)
    return None if ok else "wrong_token"


def transition(domain, to, **values):
    """Move the domain to ``to`` if the machine allows it and nobody moved it first (True when
    done, False when another check got there first); IllegalTransition for a forbidden move."""
    was = domain.state
    if to not in TRANSITIONS[was]:
        raise IllegalTransition(f"domain {domain.domain}: {was} -> {to} is not allowed")
    done = db.session.execute(sa.update(CustomDomain).where(CustomDomain.id == domain.id, CustomDomain.state == was)
                              .values(state=to, **values))
    db.session.commit()
    db.session.expire(domain)
    forget_sites()
    return done.rowcount == 1


def check(domain, config, now=None):
    """Check one domain's TXT record now and record the outcome; returns the domain, refreshed."""
    now = now or utcnow()
    reason = lookup(domain, config)
    if reason is None:
        values = {"last_checked_at": now, "failure": None}
        if domain.state != "verified":
            values["verified_at"] = now
        transition(domain, "verified", **values)
    else:
        transition(domain, "failed", last_checked_at=now, failure=reason)
    return db.session.get(CustomDomain, domain.id)


def due(config, now=None, limit=100):
    """Domains whose last check is older than DOMAIN_RECHECK seconds (or never checked)."""
    now = now or utcnow()
    before = now - timedelta(seconds=int(config.get("DOMAIN_RECHECK", 3600)))
    return db.session.scalars(
        sa.select(CustomDomain)
        .where(sa.or_(CustomDomain.last_checked_at.is_(None), CustomDomain.last_checked_at <= before))
        .order_by(CustomDomain.last_checked_at.is_not(None), CustomDomain.last_checked_at).limit(limit)).all()


def recheck_due(config, now=None):
    """One pass of the background re-check; returns how many domains were checked."""
    checked = 0
    for domain in due(config, now):
        try:
            check(domain, config, now)
            checked += 1
        except Exception:
            db.session.rollback()
            log.exception("re-checking %s failed", domain.domain)
    return checked


class Rechecker:
    """Each process re-checks due domains in a thread of its own (a greenlet under gevent), never
    on the call clock's thread: a slow DNS server must not delay a call's meter."""

    def __init__(self, app):
        self.app = app
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def ensure_started(self):
        if self._started:
            return
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="callme-domains", daemon=True).start()

    def stop(self):
        self._stop.set()

    def _run(self):
        every = max(1, min(60, int(self.app.config.get("DOMAIN_RECHECK", 3600)) // 4 or 1))
        while not self._stop.wait(every):
            try:
                with self.app.app_context():
                    recheck_due(self.app.config)
                    db.session.remove()
            except Exception:
                log.exception("domain re-check pass failed")


# ---- serving -----------------------------------------------------------------------------------

_SITES = {}   # host -> (expires_monotonic, (state, expert_id, handle) or None)
_SITES_LOCK = threading.Lock()


def forget_sites():
    """Drop the cached host lookups (after any change of a domain in this process)."""
    with _SITES_LOCK:
        _SITES.clear()


def site_for(host, ttl=0.0):
    """What ``host`` is: None (no custom domain by that name) or (state, expert_id, handle); one
    indexed lookup, kept ``ttl`` seconds in this process."""
    now = time.monotonic()
    if ttl > 0:
        with _SITES_LOCK:
            hit = _SITES.get(host)
        if hit and hit[0] > now:
            return hit[1]
    row = db.session.execute(
        sa.select(CustomDomain.state, CustomDomain.expert_id, Expert.handle)
        .join(Expert, Expert.id == CustomDomain.expert_id).where(CustomDomain.domain == host)).first()
    site = tuple(row) if row else None
    if ttl > 0:
        with _SITES_LOCK:
            if len(_SITES) > 10_000:
                _SITES.clear()
            _SITES[host] = (now + ttl, site)
    return site


def is_verified(host):
    """Whether ``host`` (already normalised) is a verified domain: the ask endpoint's answer."""
    return db.session.scalar(sa.select(CustomDomain.id).where(
        CustomDomain.domain == host, CustomDomain.state == "verified")) is not None


def allowed_origins(expert):
    """The origins that may embed the expert: their own list and their verified domains (https)."""
    verified = db.session.scalars(sa.select(CustomDomain.domain).where(
        CustomDomain.expert_id == expert.id, CustomDomain.state == "verified")).all()
    return [*(expert.allowed_origins or []), *(f"https://{name}" for name in verified)]
