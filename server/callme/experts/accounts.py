"""Expert accounts: creating one, checking a password, changing it.

The rules for an account's values are said here once; the command line, the pages and the
tests all create experts through ``create_expert``.
"""
import re

from flask import current_app

from .. import models
from ..extensions import db
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
                  cap_minutes=None, origins=()):
    """Create an expert; raise ValueError with a readable message for bad values."""
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
