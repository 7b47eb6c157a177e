"""PayPal, through ``paypal-server-sdk``: one SDK client per expert, their secret encrypted.

Every expert brings their own PayPal REST app (client id and secret), so money goes
straight to them. This module is the boundary: amounts leave as PayPal's decimal strings
(``currency.to_paypal_value``) and come back as minor units; every PayPal answer is kept
as the raw JSON dict it was. Errors of any kind (PayPal's, the network's, the SDK's)
become one ``PayPalError`` with a ``transient`` flag that says whether a retry may help.

``PAYPAL_BASE_URL`` points the SDK at another server (the emulator, in tests and the demo).

Secrets are encrypted with Fernet. The key is ``PAYPAL_ENCRYPTION_KEY`` (a Fernet key:
32 url-safe base64 bytes, ``Fernet.generate_key()``) or, when unset, derived from
``SECRET_KEY`` with HKDF-SHA256. Keys derived from ``SECRET_KEY_FALLBACKS`` (and the keys
in ``PAYPAL_ENCRYPTION_KEY_FALLBACKS``) still decrypt, so rotating SECRET_KEY keeps stored
secrets readable; ``set_paypal_credentials`` re-encrypts with the current key.
"""
import base64
import json
import logging
import threading

import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import CallmeError
from .currency import from_paypal_value, to_paypal_value

log = logging.getLogger(__name__)

MODES = ("sandbox", "live")
PREFER = "return=representation"


class PayPalError(CallmeError):
    """A refusal or failure at PayPal. ``code`` is PayPal's issue name (or ours), ``paypal_status``
    the HTTP status PayPal answered; where one reaches a person it answers 503 when a retry may
    help (``transient``), else 400."""

    def __init__(self, code, message, paypal_status=None, transient=False, payload=None):
        super().__init__(code, message, status=503 if transient else 400)
        self.paypal_status, self.transient, self.payload = paypal_status, transient, payload

    def __repr__(self):
        return f"PayPalError({self.code!r}, {self.message!r}, paypal_status={self.paypal_status})"


# ---- secrets at rest ---------------------------------------------------------------------

def _derive(secret_key):
    raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"callme paypal client secret v1")
    return base64.urlsafe_b64encode(hkdf.derive(raw))


def cipher(config):
    """The MultiFernet that encrypts with the current key and decrypts with old ones too."""
    keys = []
    if config.get("PAYPAL_ENCRYPTION_KEY"):
        keys.append(config["PAYPAL_ENCRYPTION_KEY"])
        keys.extend(config.get("PAYPAL_ENCRYPTION_KEY_FALLBACKS") or [])
    keys.append(_derive(config["SECRET_KEY"]))
    keys.extend(_derive(k) for k in config.get("SECRET_KEY_FALLBACKS") or [])
    return MultiFernet([Fernet(k) for k in keys])


def encrypt_secret(config, secret):
    return cipher(config).encrypt(secret.encode()).decode("ascii")


def decrypt_secret(config, token):
    try:
        return cipher(config).decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise PayPalError("secret_unreadable", "The stored PayPal secret cannot be decrypted with the "
                          "configured keys (PAYPAL_ENCRYPTION_KEY / SECRET_KEY changed?).") from None


# ---- SDK clients ---------------------------------------------------------------------------

def base_url_for(mode, override=None):
    if override:
        return override.rstrip("/")
    return "https://api-m.paypal.com" if mode == "live" else "https://api-m.sandbox.paypal.com"


def make_client(client_id, secret, mode="sandbox", base_url=None, timeout=15):
    """A PayPal SDK client for one REST app; ``base_url`` replaces PayPal's when given."""
    from paypalserversdk.configuration import Environment, Server
    from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
    from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

    if mode not in MODES:
        raise PayPalError("bad_mode", f"The PayPal mode is 'sandbox' or 'live', not {mode!r}.")
    environment = Environment.PRODUCTION if mode == "live" else Environment.SANDBOX
    client = PaypalServersdkClient(
        client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id, o_auth_client_secret=secret),
        environment=environment, timeout=timeout, max_retries=0)
    if base_url:
        # The SDK reads its base URI from this table; an instance copy overrides the class's.
        client.config.environments = {environment: {Server.DEFAULT: base_url.rstrip("/")}}
    return client


class Gateway:
    """One expert's PayPal REST app: the operations callme uses, answering raw JSON dicts."""

    def __init__(self, client_id, secret, mode="sandbox", base_url=None, timeout=15):
        self.client_id, self.mode = client_id, mode
        self.base_url = base_url_for(mode, base_url)
        self.timeout = timeout
        self.sdk = make_client(client_id, secret, mode, base_url, timeout)
        self._token_lock = threading.Lock()

    # -- plumbing --

    def _call(self, what, fn, options):
        from apimatic_core.exceptions.auth_validation_exception import AuthValidationException
        from paypalserversdk.exceptions.api_exception import ApiException
        from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException

        try:
            response = fn(options)
        except OAuthProviderException as e:
            raise _auth_error(e) from None
        except AuthValidationException:
            raise PayPalError("invalid_client", "PayPal refused the app's client id or secret.", 401) from None
        except ApiException as e:
            raise _api_error(what, e) from None
        except requests.RequestException as e:
            raise PayPalError("network", f"PayPal could not be reached ({what}): {e.__class__.__name__}",
                              transient=True) from None
        text = response.text or ""
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            raise PayPalError("bad_response", f"PayPal answered {what} with something that is not JSON.",
                              response.status_code, transient=True) from None

    def access_token(self):
        """A valid OAuth access token (fetched once, reused until it expires)."""
        auth = self.sdk.oauth_2
        with self._token_lock:
            try:
                valid = auth.is_valid()
            except requests.RequestException as e:
                raise PayPalError("network", f"PayPal could not be reached: {e.__class__.__name__}",
                                  transient=True) from None
            if not valid:
                # is_valid() swallows the refusal; ask again to learn why.
                try:
                    auth.fetch_token()
                except Exception as e:  # noqa: BLE001 - any refusal is reported as such
                    raise _auth_error(e) from None
                raise PayPalError("invalid_client", "PayPal refused the app's client id or secret.", 401)
            headers = {}
            auth.apply(_HeaderSink(headers))
            return headers["Authorization"].removeprefix("Bearer ")

    def check(self):
        """Fetch a fresh token: raises PayPalError when the credentials are wrong."""
        try:
            token = self.sdk.oauth_2.fetch_token()
        except requests.RequestException as e:
            raise PayPalError("network", f"PayPal could not be reached: {e.__class__.__name__}",
                              transient=True) from None
        except Exception as e:  # noqa: BLE001
            raise _auth_error(e) from None
        if not getattr(token, "access_token", None):
            raise PayPalError("invalid_client", "PayPal gave no access token for these credentials.")

    # -- orders --

    def create_order(self, intent, amount_minor, currency, *, request_id, return_url=None, cancel_url=None,
                     description=None, custom_id=None, brand_name=None):
        unit = {"amount": {"currency_code": currency, "value": to_paypal_value(amount_minor, currency)}}
        if description:
            unit["description"] = description[:127]
        if custom_id:
            unit["custom_id"] = custom_id[:127]
        body = {"intent": intent, "purchase_units": [unit]}
        if return_url or cancel_url:
            context = {"return_url": return_url, "cancel_url": cancel_url, "user_action": "CONTINUE",
                       "shipping_preference": "NO_SHIPPING"}
            if brand_name:
                context["brand_name"] = brand_name[:127]
            body["payment_source"] = {"paypal": {"experience_context": context}}
        return self._call("create order", self.sdk.orders.create_order, {
            "body": body, "paypal_request_id": request_id, "prefer": PREFER})

    def get_order(self, order_id):
        return self._call("get order", self.sdk.orders.get_order, {"id": order_id})

    def authorize_order(self, order_id, *, request_id):
        return self._call("authorize order", self.sdk.orders.authorize_order, {
            "id": order_id, "paypal_request_id": request_id, "prefer": PREFER, "body": {}})

    def capture_order(self, order_id, *, request_id):
        return self._call("capture order", self.sdk.orders.capture_order, {
            "id": order_id, "paypal_request_id": request_id, "prefer": PREFER, "body": {}})

    # -- authorizations, captures, refunds --

    def get_authorization(self, authorization_id):
        return self._call("get authorization", self.sdk.payments.get_authorized_payment,
                          {"authorization_id": authorization_id})

    def capture_authorization(self, authorization_id, amount_minor, currency, *, request_id, final=True):
        body = {"amount": {"currency_code": currency, "value": to_paypal_value(amount_minor, currency)},
                "final_capture": final}
        return self._call("capture", self.sdk.payments.capture_authorized_payment, {
            "authorization_id": authorization_id, "body": body, "paypal_request_id": request_id,
            "prefer": PREFER})

    def void_authorization(self, authorization_id, *, request_id):
        return self._call("void", self.sdk.payments.void_payment, {
            "authorization_id": authorization_id, "paypal_request_id": request_id, "prefer": PREFER})

    def refund_capture(self, capture_id, amount_minor, currency, *, request_id, note=None):
        body = {}
        if amount_minor is not None:
            body["amount"] = {"currency_code": currency, "value": to_paypal_value(amount_minor, currency)}
        if note:
            body["note_to_payer"] = note[:255]
        return self._call("refund", self.sdk.payments.refund_captured_payment, {
            "capture_id": capture_id, "body": body, "paypal_request_id": request_id, "prefer": PREFER})

    # -- webhooks --

    def verify_webhook(self, headers, event, webhook_id):
        """Ask PayPal whether this event was signed by PayPal for this webhook. True or False.

        The SDK has no controller for it: its OAuth token, and a plain HTTP call.
        """
        def header(name):
            return headers.get(name) or headers.get(name.lower())

        body = {
            "auth_algo": header("PAYPAL-AUTH-ALGO"), "cert_url": header("PAYPAL-CERT-URL"),
            "transmission_id": header("PAYPAL-TRANSMISSION-ID"),
            "transmission_sig": header("PAYPAL-TRANSMISSION-SIG"),
            "transmission_time": header("PAYPAL-TRANSMISSION-TIME"),
            "webhook_id": webhook_id, "webhook_event": event,
        }
        if not all(body.values()):
            return False
        token = self.access_token()
        try:
            r = requests.post(self.base_url + "/v1/notifications/verify-webhook-signature", json=body,
                              headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout)
        except requests.RequestException as e:
            raise PayPalError("network", f"PayPal could not be reached: {e.__class__.__name__}",
                              transient=True) from None
        if r.status_code >= 500:
            raise PayPalError("paypal_unavailable", "PayPal could not verify the event now.", r.status_code,
                              transient=True)
        if not r.ok:
            log.warning("webhook verification refused: %s %s", r.status_code, r.text[:500])
            return False
        try:
            return r.json().get("verification_status") == "SUCCESS"
        except ValueError:
            return False


class _HeaderSink:
    def __init__(self, headers):
        self.headers = headers

    def add_header(self, name, value):
        self.headers[name] = value


def _auth_error(e):
    status = getattr(e, "response_code", None)
    if status is not None and status >= 500:
        return PayPalError("paypal_unavailable", "PayPal could not check the credentials now; try again.",
                           status, transient=True)
    detail = getattr(e, "error_description", None) or getattr(e, "error", None) or "refused"
    return PayPalError("invalid_client", f"PayPal refused the app's client id or secret ({detail}).",
                       status or 401)


def _api_error(what, e):
    status = e.response_code
    payload = None
    try:
        payload = json.loads(e.response.text)
    except (ValueError, TypeError, AttributeError):
        pass
    name, message = "paypal_error", str(getattr(e, "message", None) or e.reason)
    if isinstance(payload, dict):
        name = payload.get("name") or name
        message = payload.get("message") or message
        details = payload.get("details") or []
        if details and isinstance(details[0], dict) and details[0].get("issue"):
            name = details[0]["issue"]
            message = details[0].get("description") or message
    transient = status >= 500 or status in (408, 429)
    return PayPalError(name, f"PayPal refused to {what}: {message}", status, transient=transient, payload=payload)


# ---- per-expert clients, reused -------------------------------------------------------------

_gateways = {}
_gateways_lock = threading.Lock()


def gateway_for(expert, config):
    """The expert's Gateway, built once per credentials version and reused (its token too)."""
    if not expert.paypal_client_id or not expert.paypal_secret_enc:
        raise PayPalError("payments_not_set_up", "This expert has not connected PayPal.")
    key = (expert.id, expert.paypal_version, expert.paypal_client_id, expert.paypal_mode,
           config.get("PAYPAL_BASE_URL"))
    with _gateways_lock:
        gateway = _gateways.get(key)
    if gateway is None:
        gateway = Gateway(expert.paypal_client_id, decrypt_secret(config, expert.paypal_secret_enc),
                          expert.paypal_mode or "sandbox", config.get("PAYPAL_BASE_URL"),
                          config.get("PAYPAL_TIMEOUT", 15))
        with _gateways_lock:
            for old in [k for k in _gateways if k[0] == expert.id]:
                del _gateways[old]
            gateway = _gateways.setdefault(key, gateway)
    return gateway


def forget_gateways():
    with _gateways_lock:
        _gateways.clear()


def check_credentials(client_id, secret, mode, base_url=None, timeout=15):
    """Fetch a token with these credentials: None when PayPal takes them, PayPalError when not.
    ``base_url`` replaces PayPal's address (PAYPAL_BASE_URL), as for every Gateway."""
    client_id, secret, mode, _ = clean_credentials(client_id, secret, mode)
    Gateway(client_id, secret, mode, base_url, timeout).check()


# ---- reading PayPal's answers ---------------------------------------------------------------

def amount_of(obj):
    """(minor units, currency) of a PayPal resource's ``amount``."""
    amount = (obj or {}).get("amount") or {}
    currency = amount.get("currency_code")
    if not isinstance(currency, str):
        raise PayPalError("bad_response", "PayPal's answer has no amount.", transient=False)
    return from_paypal_value(amount.get("value"), currency), currency


def order_payments(order, kind):
    """The ``authorizations`` or ``captures`` of an order's first purchase unit."""
    units = (order or {}).get("purchase_units") or [{}]
    return ((units[0].get("payments") or {}).get(kind)) or []


def approve_url(order):
    for link in (order or {}).get("links") or []:
        if link.get("rel") in ("payer-action", "approve"):
            return link.get("href")
    return None


# ---- an expert's credentials --------------------------------------------------------------

def clean_credentials(client_id, secret, mode, webhook_id=None, secret_required=True):
    """An expert's PayPal app as it is stored: (client id, secret, mode, webhook id or None),
    stripped; PayPalError saying what is wrong. The one check of the form, the CLI and the store."""
    client_id, secret = (client_id or "").strip(), (secret or "").strip()
    webhook_id = (webhook_id or "").strip() or None
    if mode not in MODES:
        raise PayPalError("bad_mode", "Choose sandbox or live.")
    if not client_id:
        raise PayPalError("invalid_client", "Enter the client id of your PayPal REST app.")
    if len(client_id) > 128 or any(c.isspace() for c in client_id):
        raise PayPalError("invalid_client", "That is not a PayPal client id (at most 128 characters, no spaces).")
    if not secret and secret_required:
        raise PayPalError("invalid_client", "Enter the secret of your PayPal REST app.")
    if len(secret) > 512 or any(c.isspace() for c in secret):
        raise PayPalError("invalid_client", "That is not a PayPal secret (at most 512 characters, no spaces).")
    if webhook_id is not None and (len(webhook_id) > 64 or any(c.isspace() for c in webhook_id)):
        raise PayPalError("bad_webhook_id", "That is not a PayPal webhook id (at most 64 characters, no spaces).")
    return client_id, secret, mode, webhook_id


def kept_secret(expert, client_id, config):
    """The stored secret, for a form that leaves it empty: it is never shown again, so an empty
    field keeps it, for the same app only."""
    if not expert.paypal_secret_enc or client_id != expert.paypal_client_id:
        raise PayPalError("invalid_client", "Enter the secret of your PayPal REST app.")
    try:
        return decrypt_secret(config, expert.paypal_secret_enc)
    except PayPalError as e:
        raise PayPalError(e.code, f"{e.message} Enter the secret again.") from None


def set_paypal_credentials(expert, client_id, secret, mode, webhook_id=None, config=None, check=True):
    """Store an expert's own PayPal REST app: checked with PayPal first (a token is fetched;
    PayPalError when refused, nothing stored then), the secret encrypted at rest."""
    from ..extensions import db
    from ..models import utcnow

    if config is None:
        from flask import current_app

        config = current_app.config
    client_id, secret, mode, webhook_id = clean_credentials(client_id, secret, mode, webhook_id)
    if check:
        check_credentials(client_id, secret, mode, config.get("PAYPAL_BASE_URL"), config.get("PAYPAL_TIMEOUT", 15))
    expert.paypal_client_id = client_id
    expert.paypal_secret_enc = encrypt_secret(config, secret)
    expert.paypal_mode = mode
    expert.paypal_webhook_id = webhook_id
    expert.paypal_version = (expert.paypal_version or 0) + 1
    expert.paypal_connected_at = utcnow()
    db.session.commit()
    return expert
