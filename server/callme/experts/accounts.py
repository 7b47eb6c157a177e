"""Expert accounts: creating one, checking a password, changing it.

The rules for an account's values are said here once; the command line, the pages and the
tests all create experts through ``create_expert``.
"""
import hashlib
import re

import sqlalchemy as sa
from flask import current_app, render_template
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from .. import models
from ..errors import CallmeError
from ..extensions import db
from ..notify.outbox import queue
from ..models import HANDLE_RE, MAX_PRICE, RESERVED_HANDLES, Expert, ExpertSession, password_matches

CURRENCY_HELP = "ISO 4217 code, e.g. USD"
MIN_PASSWORD, MAX_PASSWORD = 8, 256

_stand_in = (None, None)  # (the hash function that made it, the hash)


def check_new_password(password):
    """Raise ValueError unless the password may be an expert's."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"The password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"The password can have at most {MAX_PASSWORD} characters.")


def create_expert(email, password, handle, name, price, currency="USD", free_seconds=None,
                  cap_minutes=None, origins=(), verified=True):
    """Create an expert; raise ValueError with a readable message for bad values.

    ``verified=False`` (self-service sign-up): the expert logs in once the email link is opened."""
    handle = handle.lower()
    email = email.strip().lower()
    if not HANDLE_RE.match(handle):
        raise ValueError("The handle takes 1-32 lowercase letters, digits and inner dashes.")
    if handle in RESERVED_HANDLES:
        raise ValueError(f"The handle {handle!r} is taken by a callme page; choose another.")
    if "@" not in email:
        raise ValueError("The email address is not valid.")
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise ValueError(f"The currency must be an {CURRENCY_HELP}.")
    if price < 0:
        raise ValueError("The price cannot be negative.")
    if price > MAX_PRICE:
        raise ValueError(f"The price can be at most {MAX_PRICE} minor units per minute.")
    if free_seconds is not None and free_seconds < 0:
        raise ValueError("The free seconds cannot be negative.")
    if cap_minutes is not None and cap_minutes < 1:
        raise ValueError("The cap must be at least 1 minute.")
    check_new_password(password)
    if db.session.scalar(db.select(Expert).where((Expert.handle == handle) | (Expert.email == email))):
        raise ValueError("An expert with that handle or email already exists.")
    cfg = current_app.config
    expert = Expert(
        email=email, handle=handle, display_name=name, price_minor=price, currency=currency.upper(),
        free_seconds=cfg["DEFAULT_FREE_SECONDS"] if free_seconds is None else free_seconds,
        cap_minutes=cfg["DEFAULT_CAP_MINUTES"] if cap_minutes is None else cap_minutes,
        allowed_origins=[o.rstrip("/") for o in origins],
        email_verified_at=models.utcnow() if verified else None,
    )
    expert.set_password(password)
    db.session.add(expert)
    db.session.commit()
    return expert


def authenticate(email, password):
    """Return the expert with this email and password, or None."""
    email = (email or "").strip().lower()
    expert = db.session.scalar(db.select(Expert).filter_by(email=email)) if email else None
    if expert is None:
        # As slow as a wrong password: otherwise the answer's time tells which emails have accounts.
        password_matches(_stand_in_hash(), password)
        return None
    return expert if expert.check_password(password) else None


def _stand_in_hash():
    """A hash of no one's password, made by the hasher that makes real ones (same cost)."""
    global _stand_in
    maker, password_hash = _stand_in
    if maker is not models.generate_password_hash:
        maker = models.generate_password_hash
        _stand_in = (maker, maker("no account has this password"))
    return _stand_in[1]


def change_password(expert, password):
    """Set a new password and end every session of the expert (the one asking logs in again)."""
    check_new_password(password)
    expert.set_password(password)
    ExpertSession.close_all(expert.id)
    db.session.commit()


def replace_password(expert, current, new, confirm):
    """The expert's own change: the current password first, the new one twice; ValueError says why."""
    if not expert.check_password(current):
        raise ValueError("The current password is wrong.")
    if new != confirm:
        raise ValueError("The two new passwords differ.")
    change_password(expert, new)


# ---- self-service: sign-up, email verification, password reset, email change ---------------------
#
# Each emailed link is an itsdangerous token with a salt of its own, expiring, and bound to the
# state it changes, so that it works once: a verification link names the address and is refused
# once that address is verified; a reset link carries a fingerprint of the password hash it
# replaces; an email-change link names the address it replaces. Every form that takes an email
# answers alike whether or not an account has it: what differs goes by mail to that address.

EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+$")
MAX_NAME = 120
VERIFY_SALT = "callme.verify-email.v1"
RESET_SALT = "callme.password-reset.v1"
EMAIL_CHANGE_SALT = "callme.email-change.v1"


class LinkError(CallmeError):
    """An emailed link that cannot be honoured: ``link_invalid``, ``link_expired`` or ``link_used``."""

    def __init__(self, code, message):
        super().__init__(code, message, status=400)


def normal_email(email):
    """The address as stored (trimmed, lower case); ValueError unless it looks like one."""
    email = (email or "").strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValueError("The email address is not valid.")
    return email


def check_display_name(name):
    name = " ".join((name or "").split())
    if not name:
        raise ValueError("Say what your name is: visitors see it on your page.")
    if len(name) > MAX_NAME:
        raise ValueError(f"The name can have at most {MAX_NAME} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("The name cannot hold control characters.")
    return name


def _serializer(config, salt):
    return URLSafeTimedSerializer([*config.get("SECRET_KEY_FALLBACKS", []), config["SECRET_KEY"]], salt=salt)


def _load(config, salt, token, max_age, key="i", kind=int):
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise LinkError("link_invalid", "This link is not valid: open the one from the mail, whole.")
    try:
        data = _serializer(config, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkError("link_expired", "This link has expired: ask for a new one.") from None
    except BadSignature:
        raise LinkError("link_invalid", "This link is not valid: open the one from the mail, whole.") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise LinkError("link_invalid", "This link is not valid: open the one from the mail, whole.")
    return data


def _expert_of(data):
    expert = db.session.get(Expert, data["i"])
    if expert is None:
        raise LinkError("link_invalid", "This link's account does not exist any more.")
    return expert


def _mail(template, to, subject, **context):
    queue(to, subject, render_template(f"mail/{template}.txt", **context))


def _fingerprint(password_hash):
    """Names the password a reset link replaces without putting its hash in the link."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:24]


def verification_link(email, base_url, config):
    """The link that confirms an address: it names only the address (the expert may not exist
    yet when it is made, in the sign-up's own transaction)."""
    token = _serializer(config, VERIFY_SALT).dumps({"e": email})
    return f"{base_url}/verify?t={token}"


def _send_verification(email, name, handle, base_url, config):
    _mail("verify", email, "Confirm your email address for callme", email=email, name=name, handle=handle,
          link=verification_link(email, base_url, config), hours=config["VERIFY_LINK_TTL"] // 3600,
          base_url=base_url)


def sign_up(email, password, handle, name, base_url, config, reserved=()):
    """A new expert, unverified, with a verification mail; ValueError says what is wrong.

    An address that already has an account gets a mail saying so and nothing is created; the
    answer is the same as for a new one (returns None then), so the form tells no one which
    addresses have accounts. Handles are public: a taken one is refused by name.
    """
    email = normal_email(email)
    name = check_display_name(name)
    handle = (handle or "").strip().lower()
    if handle in reserved:
        raise ValueError(f"The handle {handle!r} is taken by a callme page; choose another.")
    if db.session.scalar(db.select(Expert.id).where(Expert.handle == handle)):
        raise ValueError(f"The handle {handle!r} is taken; choose another.")
    check_new_password(password)
    owner = db.session.scalar(db.select(Expert).where(Expert.email == email))
    if owner is not None:
        models.generate_password_hash(password)  # as slow as creating an account
        _mail("already", owner.email, "Your callme account",
              expert=owner, base_url=base_url)
        db.session.commit()
        return None
    # Queued first: create_expert's commit makes the account and its mail together, or neither.
    _send_verification(email, name, handle, base_url, config)
    try:
        return create_expert(email, password, handle, name, 0, "USD", verified=False)
    except IntegrityError:  # the same handle or address signed up at the same moment
        db.session.rollback()
        raise ValueError("An expert with that handle or email already exists.") from None
    except ValueError:
        db.session.rollback()
        raise


def _expert_with_address(email):
    """The expert whose address this is, or None (also for something that is not an address)."""
    try:
        email = normal_email(email)
    except ValueError:
        return None
    return db.session.scalar(db.select(Expert).where(Expert.email == email))


def resend_verification(email, base_url, config):
    """Another verification mail, if an unverified account has this address (the same answer either way)."""
    expert = _expert_with_address(email)
    if expert is not None and expert.email_verified_at is None:
        _send_verification(expert.email, expert.display_name, expert.handle, base_url, config)
        db.session.commit()


def verify_email(token, config):
    """Open a verification link: the expert's address is verified (once); returns the expert."""
    data = _load(config, VERIFY_SALT, token, config["VERIFY_LINK_TTL"], key="e", kind=str)
    expert = db.session.scalar(db.select(Expert).where(Expert.email == data["e"]))
    if expert is None:
        raise LinkError("link_invalid", "This link's account does not exist (any more).")
    if expert.email_verified_at is not None:
        raise LinkError("link_used", "This link was used already: your address is verified, log in.")
    done = db.session.execute(sa.update(Expert).where(Expert.id == expert.id, Expert.email == data["e"],
                                                      Expert.email_verified_at.is_(None))
                              .values(email_verified_at=models.utcnow()))
    db.session.commit()
    if done.rowcount != 1:
        raise LinkError("link_used", "This link was used already: your address is verified, log in.")
    db.session.refresh(expert)
    return expert


def request_password_reset(email, base_url, config):
    """A reset mail to the address, if an account has it (the same answer either way)."""
    expert = _expert_with_address(email)
    if expert is None:
        return
    token = _serializer(config, RESET_SALT).dumps({"i": expert.id, "p": _fingerprint(expert.password_hash)})
    _mail("reset", expert.email, "Reset your callme password",
          expert=expert, link=f"{base_url}/password/reset?t={token}",
          minutes=config["RESET_LINK_TTL"] // 60, base_url=base_url)
    db.session.commit()


def check_reset_link(token, config):
    """The expert a reset link is for, while it is unused and fresh; LinkError otherwise."""
    data = _load(config, RESET_SALT, token, config["RESET_LINK_TTL"])
    expert = _expert_of(data)
    if data.get("p") != _fingerprint(expert.password_hash):
        raise LinkError("link_used", "This link was used already (or the password changed since): ask for a new one.")
    return expert


def reset_password(token, password, confirm, config):
    """Set a new password through a reset link: every session ends, the link is spent."""
    expert = check_reset_link(token, config)
    if password != confirm:
        raise ValueError("The two new passwords differ.")
    check_new_password(password)
    if expert.email_verified_at is None:  # the link came to the address: it is theirs
        expert.email_verified_at = models.utcnow()
    change_password(expert, password)
    return expert


def request_email_change(expert, password, new_email, base_url, config):
    """Mail a confirmation link to the new address; the address changes only when it is opened."""
    if not expert.check_password(password or ""):
        raise ValueError("The password is wrong.")
    new_email = normal_email(new_email)
    if new_email == expert.email:
        raise ValueError("That is your address already.")
    owner = db.session.scalar(db.select(Expert.id).where(Expert.email == new_email))
    if owner is not None:  # no word of it here: the address's owner hears of it
        _mail("email_taken", new_email, "Your callme account",
              expert=expert, base_url=base_url)
    else:
        token = _serializer(config, EMAIL_CHANGE_SALT).dumps({"i": expert.id, "from": expert.email, "to": new_email})
        _mail("email_change", new_email, "Confirm your new email address for callme", expert=expert, new_email=new_email,
              link=f"{base_url}/email/confirm?t={token}", hours=config["VERIFY_LINK_TTL"] // 3600,
              base_url=base_url)
    db.session.commit()
    return new_email


def confirm_email_change(token, base_url, config):
    """Open an email-change link: the address changes (once), the old address is told."""
    data = _load(config, EMAIL_CHANGE_SALT, token, config["VERIFY_LINK_TTL"])
    expert = _expert_of(data)
    old, new = data.get("from"), data.get("to")
    if not isinstance(new, str) or expert.email != old:
        raise LinkError("link_used", "This link was used already (or the address changed since).")
    if db.session.scalar(db.select(Expert.id).where(Expert.email == new)):
        raise LinkError("link_used", "Another account has this address now; nothing was changed.")
    done = db.session.execute(sa.update(Expert).where(Expert.id == expert.id, Expert.email == old)
                              .values(email=new, email_verified_at=models.utcnow()))
    if done.rowcount != 1:
        db.session.rollback()
        raise LinkError("link_used", "This link was used already (or the address changed since).")
    _mail("email_changed", old, "Your callme address changed",
          expert=expert, new_email=new, base_url=base_url)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise LinkError("link_used", "Another account has this address now; nothing was changed.") from None
    db.session.refresh(expert)
    return expert


def published_expert(handle):
    """The expert whose pages, button and calls the public may reach: once their email is confirmed."""
    expert = db.session.scalar(db.select(Expert).filter_by(handle=(handle or "").lower()))
    return expert if expert is not None and expert.email_verified_at is not None else None
