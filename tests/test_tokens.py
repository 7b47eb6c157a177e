"""Signed tokens: bound to one call and one role, one purpose per salt, short-lived, rotatable."""
import secrets

import pytest
from itsdangerous import URLSafeTimedSerializer, timed

from callme.calls.tokens import CALL_SALT, RECEIPT_SALT, CallGrant, TokenError, Tokens, tokens_for

KEY, OLD_KEY, OTHER_KEY = "k-new-0123456789", "k-old-0123456789", "k-other-012345678"
TTL = 120


@pytest.fixture
def tokens():
    return Tokens([KEY])


@pytest.fixture
def frozen_time(monkeypatch):
    """Control the seconds itsdangerous stamps into and checks against tokens."""
    class Now:
        t = 1_700_000_000

        def advance(self, seconds):
            self.t += seconds

    now = Now()
    monkeypatch.setattr(timed.TimestampSigner, "get_timestamp", lambda self: now.t)
    return now


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip(token, index):
    """The token with one character's top bit flipped (a low bit of a last character may be padding)."""
    ch = B64[(B64.index(token[index]) + 32) % 64]
    return token[:index] + ch + token[index + 1:]


def code_of(call, *args, **kwargs):
    with pytest.raises(TokenError) as e:
        call(*args, **kwargs)
    return e.value.code


# ---- round trip -----------------------------------------------------------------------

@pytest.mark.parametrize("role", ["visitor", "expert"])
def test_call_token_round_trip(tokens, role):
    token = tokens.call_token("call-1", role)
    assert isinstance(token, str) and len(token) < 200
    assert tokens.check_call_token(token, TTL) == CallGrant("call-1", role)
    assert tokens.check_call_token(token, TTL, call_id="call-1", role=role) == CallGrant("call-1", role)


def test_receipt_token_round_trip(tokens):
    assert tokens.check_receipt_token(tokens.receipt_token("call-1"), "call-1", TTL) == "call-1"


@pytest.mark.parametrize("role", ["admin", "", None, "Visitor"])
def test_only_known_roles_get_tokens(tokens, role):
    with pytest.raises(ValueError):
        tokens.call_token("call-1", role)


# ---- expiry ---------------------------------------------------------------------------

@pytest.mark.parametrize("age, max_age, code", [
    (0, TTL, None),
    (TTL - 1, TTL, None),
    (TTL, TTL, None),                 # exactly at the limit still verifies
    (TTL + 1, TTL, "token_expired"),
    (10 * TTL, TTL, "token_expired"),
    (0, 0, None),                     # max_age=0: only within the same second
    (1, 0, "token_expired"),
    (0, -1, "token_expired"),         # max_age=-1: nothing is young enough
    (-5, TTL, "token_expired"),       # signed in the future (a clock set back): refused
])
def test_call_token_expiry(tokens, frozen_time, age, max_age, code):
    token = tokens.call_token("call-1", "visitor")
    frozen_time.advance(age)
    if code is None:
        assert tokens.check_call_token(token, max_age, call_id="call-1").role == "visitor"
    else:
        assert code_of(tokens.check_call_token, token, max_age, call_id="call-1") == code


@pytest.mark.parametrize("age, code", [(TTL, None), (TTL + 1, "token_expired")])
def test_receipt_token_expiry(tokens, frozen_time, age, code):
    token = tokens.receipt_token("call-1")
    frozen_time.advance(age)
    if code is None:
        assert tokens.check_receipt_token(token, "call-1", TTL) == "call-1"
    else:
        assert code_of(tokens.check_receipt_token, token, "call-1", TTL) == code


def test_max_age_none_never_expires(tokens, frozen_time):
    token = tokens.call_token("call-1", "expert")
    frozen_time.advance(10 ** 7)
    assert tokens.check_call_token(token, None).role == "expert"


# ---- tampering ------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["payload", "timestamp", "timestamp_last", "signature", "last"])
def test_tampered_token_is_invalid(tokens, where):
    token = tokens.call_token("call-1", "visitor")
    payload, stamp, _ = token.split(".")
    index = {"payload": 2, "timestamp": len(payload) + 2, "timestamp_last": len(payload) + len(stamp),
             "signature": len(payload) + len(stamp) + 4, "last": len(token) - 1}[where]
    bad = flip(token, index)
    assert bad != token and len(bad) == len(token)
    assert code_of(tokens.check_call_token, bad, TTL) == "token_invalid"


def test_forged_payload_with_recomputed_fields_is_invalid(tokens):
    # Swap in another call's payload while keeping the original signature.
    a = tokens.call_token("call-a", "visitor").split(".")
    b = tokens.call_token("call-b", "expert").split(".")
    forged = ".".join([b[0], a[1], a[2]])
    assert code_of(tokens.check_call_token, forged, TTL) == "token_invalid"


# ---- bound to one call, one role, one purpose ----------------------------------------

def test_wrong_call(tokens):
    token = tokens.call_token("call-1", "visitor")
    assert code_of(tokens.check_call_token, token, TTL, call_id="call-2") == "token_wrong_call"


@pytest.mark.parametrize("role, wanted", [("visitor", "expert"), ("expert", "visitor")])
def test_wrong_role(tokens, role, wanted):
    token = tokens.call_token("call-1", role)
    assert code_of(tokens.check_call_token, token, TTL, call_id="call-1", role=wanted) == "token_wrong_role"


def test_replay_into_another_call(tokens):
    """A token that opened one call opens no other, whatever the role asked for."""
    token = tokens.call_token("call-1", "expert")
    for role in (None, "expert", "visitor"):
        assert code_of(tokens.check_call_token, token, TTL, call_id="call-2", role=role) == "token_wrong_call"


def test_receipt_of_another_call(tokens):
    token = tokens.receipt_token("call-1")
    assert code_of(tokens.check_receipt_token, token, "call-2", TTL) == "token_wrong_call"


def test_receipt_token_is_not_a_call_token(tokens):
    receipt = tokens.receipt_token("call-1")
    assert code_of(tokens.check_call_token, receipt, TTL) == "token_invalid"
    assert code_of(tokens.check_call_token, receipt, TTL, call_id="call-1") == "token_invalid"


@pytest.mark.parametrize("role", ["visitor", "expert"])
def test_call_token_is_not_a_receipt(tokens, role):
    token = tokens.call_token("call-1", role)
    assert code_of(tokens.check_receipt_token, token, "call-1", TTL) == "token_invalid"


def test_token_of_another_purpose_with_the_same_key(tokens):
    """Anything else the key signs (a session, another salt) is not a call token."""
    other = URLSafeTimedSerializer([KEY], salt="cookie-session").dumps({"c": "call-1", "r": "visitor"})
    assert code_of(tokens.check_call_token, other, TTL) == "token_invalid"


@pytest.mark.parametrize("payload", [
    ["call-1", "visitor"],
    "call-1",
    {"c": "call-1"},
    {"c": "call-1", "r": "admin"},
    {"c": 7, "r": "visitor"},
    {"c": None, "r": "expert"},
    {"r": "visitor"},
])
def test_validly_signed_but_malformed_payloads(payload):
    token = URLSafeTimedSerializer([KEY], salt=CALL_SALT).dumps(payload)
    assert code_of(Tokens([KEY]).check_call_token, token, TTL) == "token_invalid"


@pytest.mark.parametrize("payload", [["call-1"], "call-1", {"c": 1}, {}])
def test_validly_signed_but_malformed_receipts(payload):
    token = URLSafeTimedSerializer([KEY], salt=RECEIPT_SALT).dumps(payload)
    with pytest.raises(TokenError):
        Tokens([KEY]).check_receipt_token(token, "call-1", TTL)


# ---- key rotation ---------------------------------------------------------------------

def test_rotated_keys():
    before = Tokens([OLD_KEY])
    after = Tokens([OLD_KEY, KEY])  # the old key is a fallback, the new one signs
    old_token = before.call_token("call-1", "visitor")
    new_token = after.call_token("call-1", "visitor")
    # The old key still verifies ...
    assert after.check_call_token(old_token, TTL).call_id == "call-1"
    assert after.check_receipt_token(before.receipt_token("call-1"), "call-1", TTL) == "call-1"
    # ... but only the new key signs: a process that knows only the new key accepts new tokens,
    # one that knows only the old key does not.
    assert Tokens([KEY]).check_call_token(new_token, TTL).call_id == "call-1"
    assert code_of(before.check_call_token, new_token, TTL) == "token_invalid"
    # Dropping the old key ends its tokens.
    assert code_of(Tokens([KEY]).check_call_token, old_token, TTL) == "token_invalid"


def test_token_of_an_unknown_key_fails():
    stranger = Tokens([OTHER_KEY]).call_token("call-1", "visitor")
    assert code_of(Tokens([OLD_KEY, KEY]).check_call_token, stranger, TTL) == "token_invalid"


def test_tokens_for_config_signs_with_secret_key_and_verifies_fallbacks():
    service = tokens_for({"SECRET_KEY": KEY, "SECRET_KEY_FALLBACKS": [OLD_KEY]})
    assert service.check_call_token(Tokens([OLD_KEY]).call_token("c", "expert"), TTL).role == "expert"
    assert Tokens([KEY]).check_call_token(service.call_token("c", "visitor"), TTL).role == "visitor"
    assert tokens_for({"SECRET_KEY": KEY}).keys == [KEY]


@pytest.mark.parametrize("keys", [[], [None], [""], [None, ""]])
def test_a_key_is_required(keys):
    with pytest.raises(ValueError):
        Tokens(keys)


# ---- garbage --------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    None, "", " ", "x" * 2000, "a.b.c", "...", "not a token", "é" * 40,
    123, 1.5, True, b"bytes", ["list"], {"c": "call-1", "r": "visitor"},
])
def test_garbage_is_invalid(tokens, garbage):
    assert code_of(tokens.check_call_token, garbage, TTL) == "token_invalid"
    assert code_of(tokens.check_call_token, garbage, TTL, call_id="call-1", role="visitor") == "token_invalid"
    assert code_of(tokens.check_receipt_token, garbage, "call-1", TTL) == "token_invalid"


def test_overlong_but_validly_signed_token_is_refused(tokens):
    long_id = secrets.token_urlsafe(1500)  # random, so that it does not compress
    token = tokens.call_token(long_id, "visitor")
    assert len(token) > 1024
    assert code_of(tokens.check_call_token, token, TTL) == "token_invalid"


def test_token_error_carries_a_message(tokens):
    with pytest.raises(TokenError) as e:
        tokens.check_call_token("nope", TTL)
    assert e.value.message and str(e.value) == e.value.message
