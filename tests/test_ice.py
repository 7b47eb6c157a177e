"""ICE servers: STUN as configured, TURN with coturn ``use-auth-secret`` credentials."""
import base64
import hashlib
import hmac

import pytest

from callme.calls.ice import ice_servers, turn_credentials

# Known answers computed outside Python:
#   printf '%s' "$username" | openssl dgst -sha1 -hmac "$secret" -binary | base64
KNOWN = [
    ("s3cret", "call123-visitor", 1_700_000_000, 3600, "1700003600:call123-visitor", "MeZJkzE1dtiNgwHnp0+5NNb60XA="),
    ("coturn-shared-secret", "abc-expert", 1_700_000_000, 600, "1700000600:abc-expert",
     "z9vSEwIiEcZQi0DksO6akLfl6+Q="),
    ("ключ", "", 0, 3600, "3600:", "vmdjZLP0Ef0sx9O/DFXFyONAHEQ="),
]


@pytest.mark.parametrize("secret, name, now, ttl, username, credential", KNOWN)
def test_turn_credentials_known_answers(secret, name, now, ttl, username, credential):
    assert turn_credentials(secret, name, now, ttl) == (username, credential)


@pytest.mark.parametrize("now, ttl, expiry", [
    (1_700_000_000, 3600, 1_700_003_600),
    (1_700_000_000.9, 3600, 1_700_003_600),   # fractional seconds are dropped
    (1_700_000_000, "60", 1_700_000_060),      # a ttl read from the environment
])
def test_turn_username_is_expiry_colon_name(now, ttl, expiry):
    username, credential = turn_credentials("secret", "call-visitor", now, ttl)
    assert username == f"{expiry}:call-visitor"
    # coturn checks: base64(HMAC-SHA1(secret, username)).
    digest = hmac.new(b"secret", username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(credential) == digest and len(digest) == 20


def test_credentials_differ_per_participant_and_secret():
    a = turn_credentials("secret", "c1-visitor", 0, 60)
    assert a != turn_credentials("secret", "c1-expert", 0, 60)
    assert a[1] != turn_credentials("other", "c1-visitor", 0, 60)[1]


BASE = {"STUN_URLS": [], "TURN_URLS": [], "TURN_SECRET": None, "TURN_TTL": 3600}


@pytest.mark.parametrize("config, expected", [
    ({}, []),
    ({"STUN_URLS": ["stun:stun.example:3478"]}, [{"urls": ["stun:stun.example:3478"]}]),
    ({"STUN_URLS": ["stun:a:3478", "stun:b:3478"]}, [{"urls": ["stun:a:3478", "stun:b:3478"]}]),
    ({"TURN_URLS": ["turn:t:3478"]}, []),                 # TURN without a secret: left out
    ({"TURN_SECRET": "s3cret"}, []),                       # a secret without URLs: nothing
    ({"TURN_URLS": ["turn:t:3478"], "TURN_SECRET": ""}, []),
    ({"TURN_URLS": ["turn:t:3478", "turns:t:5349"], "TURN_SECRET": "s3cret"},
     [{"urls": ["turn:t:3478", "turns:t:5349"], "username": "1700003600:call123-visitor",
       "credential": "MeZJkzE1dtiNgwHnp0+5NNb60XA="}]),
    ({"STUN_URLS": ["stun:s:3478"], "TURN_URLS": ["turn:t:3478"], "TURN_SECRET": "s3cret", "TURN_TTL": 3600},
     [{"urls": ["stun:s:3478"]},
      {"urls": ["turn:t:3478"], "username": "1700003600:call123-visitor",
       "credential": "MeZJkzE1dtiNgwHnp0+5NNb60XA="}]),
])
def test_ice_servers(config, expected):
    assert ice_servers({**BASE, **config}, "call123-visitor", 1_700_000_000) == expected


def test_ice_servers_copy_the_configured_lists():
    config = {**BASE, "STUN_URLS": ["stun:s:3478"]}
    servers = ice_servers(config, "x", 0)
    servers[0]["urls"].append("stun:evil:3478")
    assert config["STUN_URLS"] == ["stun:s:3478"]
