"""Expert accounts as plain functions: creation rules, authentication, password changes."""
import pytest
import sqlalchemy as sa

from callme import models
from callme.experts import accounts
from callme.extensions import db
from callme.models import Expert, ExpertSession


def make(**overrides):
    values = {"email": "ann@example.com", "password": "a-good-password", "handle": "ann", "name": "Ann",
              "price": 150, **overrides}
    return accounts.create_expert(**values)


def test_create_expert_applies_the_defaults_and_normalises(app):
    ann = make(email="Ann@Example.com", handle="Ann", currency="eur", origins=["https://ann.example/"])
    assert (ann.email, ann.handle, ann.currency, ann.free_seconds, ann.cap_minutes, ann.allowed_origins) == (
        "ann@example.com", "ann", "EUR", app.config["DEFAULT_FREE_SECONDS"], app.config["DEFAULT_CAP_MINUTES"],
        ["https://ann.example"])


@pytest.mark.parametrize("overrides, message", [
    ({"handle": "no spaces"}, "The handle takes"),
    ({"handle": "login"}, "is taken by a callme page"),
    ({"email": "nope"}, "The email address is not valid."),
    ({"currency": "US"}, "The currency must be"),
    ({"price": -1}, "cannot be negative"),
    ({"price": 10_000_001}, "at most"),
    ({"free_seconds": -1}, "free seconds"),
    ({"cap_minutes": 0}, "at least 1 minute"),
    ({"password": "short"}, "at least 8 characters"),
    ({"password": "p" * 257}, "at most 256 characters"),
])
def test_create_expert_refuses_bad_values(app, overrides, message):
    with pytest.raises(ValueError, match=message):
        make(**overrides)
    assert db.session.scalars(sa.select(Expert)).all() == []


def test_authenticate(app):
    ann = make()
    assert accounts.authenticate("ANN@example.com ", "a-good-password") is ann
    assert accounts.authenticate("ann@example.com", "a-bad-password") is None
    assert accounts.authenticate("bob@example.com", "a-good-password") is None
    assert accounts.authenticate("", "a-good-password") is None


def test_unknown_emails_cost_one_hash_check_too(app, monkeypatch):
    make()
    seen = []
    monkeypatch.setattr(models, "check_password_hash", lambda h, p: seen.append(h) or False)
    accounts.authenticate("bob@example.com", "whatever")
    accounts.authenticate("ann@example.com", "whatever")
    assert len(seen) == 2 and seen[0] != seen[1]
    assert seen[0].split("$")[0] == seen[1].split("$")[0]


def test_change_password_ends_every_session_and_checks_the_rules(app):
    ann = make()
    for _ in range(2):
        ExpertSession.open(ann.id, 3600)
    db.session.commit()
    with pytest.raises(ValueError, match="at least 8"):
        accounts.change_password(ann, "short")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpertSession)) == 2
    accounts.change_password(ann, "a-new-password")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ExpertSession)) == 0
    assert ann.check_password("a-new-password")


def test_sessions_open_check_and_close(app):
    ann = make()
    sid = ExpertSession.open(ann.id, 3600)
    db.session.commit()
    assert ExpertSession.expert(ann.id, sid) is ann
    assert ExpertSession.expert(ann.id + 1, sid) is None
    assert ExpertSession.expert(ann.id, sid + "x") is None
    # Only a hash of the id is stored: a copy of the table opens no session.
    assert db.session.scalar(sa.select(ExpertSession.id)) != sid
    ExpertSession.close(sid)
    db.session.commit()
    assert ExpertSession.expert(ann.id, sid) is None
