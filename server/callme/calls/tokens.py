"""Signed, short-lived tokens: a salt per purpose, bound to one call and one role.

Keys rotate: the newest key signs, every listed key still verifies.
"""
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..errors import CallmeError

CALL_SALT = "callme.call.v1"
RECEIPT_SALT = "callme.receipt.v1"
RATING_SALT = "callme.rating.v1"
ROLES = ("visitor", "expert")


class TokenError(CallmeError):
    """A token that must not be honoured; ``code`` says why (401; 403 for another call's token)."""

    def __init__(self, code, message):
        super().__init__(code, message, status=403 if code == "token_wrong_call" else 401)


@dataclass(frozen=True)
class CallGrant:
    call_id: str
    role: str


class Tokens:
    """Issue and check tokens with a list of keys, newest last."""

    def __init__(self, keys):
        keys = [k for k in keys if k]
        if not keys:
            raise ValueError("at least one secret key is needed")
        self.keys = keys

    def _serializer(self, salt):
        return URLSafeTimedSerializer(self.keys, salt=salt)

    def _load(self, token, salt, max_age):
        if not isinstance(token, str) or not token or len(token) > 1024:
            raise TokenError("token_invalid", "The token is missing or malformed.")
        try:
            return self._serializer(salt).loads(token, max_age=max_age)
        except SignatureExpired:
            raise TokenError("token_expired", "The token has expired.") from None
        except BadSignature:
            raise TokenError("token_invalid", "The token is not valid.") from None

    def call_token(self, call_id, role):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        return self._serializer(CALL_SALT).dumps({"c": call_id, "r": role})

    def check_call_token(self, token, max_age, call_id=None, role=None):
        """Return the grant a call token carries; refuse it for another call or role."""
        data = self._load(token, CALL_SALT, max_age)
        if not isinstance(data, dict) or data.get("r") not in ROLES or not isinstance(data.get("c"), str):
            raise TokenError("token_invalid", "The token is not valid.")
        grant = CallGrant(data["c"], data["r"])
        if call_id is not None and grant.call_id != call_id:
            raise TokenError("token_wrong_call", "The token belongs to another call.")
        if role is not None and grant.role != role:
            raise TokenError("token_wrong_role", f"The token is not a {role} token.")
        return grant

    def receipt_token(self, call_id):
        return self._serializer(RECEIPT_SALT).dumps({"c": call_id})

    def check_receipt_token(self, token, call_id, max_age):
        data = self._load(token, RECEIPT_SALT, max_age)
        if not isinstance(data, dict) or data.get("c") != call_id:
            raise TokenError("token_wrong_call", "The token belongs to another call.")
        return call_id

    def rating_token(self, call_id):
        """The rating link's token: lets its holder rate ``call_id`` (once, within the window)."""
        return self._serializer(RATING_SALT).dumps({"c": call_id})

    def check_rating_token(self, token, call_id, max_age):
        data = self._load(token, RATING_SALT, max_age)
        if not isinstance(data, dict) or data.get("c") != call_id:
            raise TokenError("token_wrong_call", "The token belongs to another call.")
        return call_id


def tokens_for(config):
    """Build the token service from Flask config (SECRET_KEY signs, fallbacks verify)."""
    return Tokens([*config.get("SECRET_KEY_FALLBACKS", []), config["SECRET_KEY"]])
