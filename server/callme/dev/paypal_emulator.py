"""A PayPal emulator: the REST endpoints callme uses, as a real HTTP server, for tests and the demo.

Tests cannot reach PayPal, so the app talks to this server through the real
``paypal-server-sdk`` with the SDK's base URL pointed here. It speaks PayPal's JSON shapes,
status codes and error bodies (``{"name", "message", "debug_id", "details": [{"issue",
"description"}]}``) for:

- ``POST /v1/oauth2/token`` (HTTP Basic client id:secret, ``grant_type=client_credentials``);
  every other API endpoint wants ``Authorization: Bearer <token>`` of a known app.
- ``POST /v2/checkout/orders``, ``GET /v2/checkout/orders/{id}``,
  ``POST /v2/checkout/orders/{id}/authorize``, ``POST /v2/checkout/orders/{id}/capture``.
- ``GET /v2/payments/authorizations/{id}``, ``POST .../{id}/capture``, ``POST .../{id}/void``.
- ``GET /v2/payments/captures/{id}``, ``POST .../{id}/refund``, ``GET /v2/payments/refunds/{id}``.
- ``POST /v1/notifications/verify-webhook-signature``.
- ``GET /checkoutnow?token=ID``: the payer's approval page (stands in for the PayPal login).

Every POST honours ``PayPal-Request-Id``: the same id (per app, method and path) replays the
first successful answer exactly and changes nothing. ``Prefer: return=representation`` gives
full bodies, otherwise PayPal's minimal ones (id, status, links).

Amounts are kept as integers of minor units; PayPal's decimal strings are parsed with
``decimal.Decimal`` and checked like PayPal does (the currency's decimals, > 0, supported).

Controls for tests: ``add_app``, ``add_webhook``, ``approve``, ``expire``, ``advance``,
``books``, ``fail_next``, ``drop_next``, ``webhook``, ``send_webhook``, ``requests``.

    python -m callme.paypal_emulator --port 5002 --app CLIENT_ID:SECRET
"""
import base64
import binascii
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# The currencies PayPal's REST API takes, and the decimals of each (PayPal's, not ISO's:
# HUF and TWD are whole units at PayPal).
DECIMALS = dict.fromkeys(("AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "ILS", "MYR", "MXN", "NZD",
                         "NOK", "PHP", "PLN", "GBP", "RUB", "SGD", "SEK", "CHF", "THB", "USD"), 2)
DECIMALS.update({"HUF": 0, "JPY": 0, "TWD": 0})

CAPTURE_CEILING_PERCENT = 115  # total captured <= 115% of the authorized amount
AUTHORIZATION_DAYS = 29  # an authorization expires 29 days after it is made
TOKEN_SECONDS = 32400
# What PayPal keeps of a capture (the emulator's own schedule): 3.49% plus a fixed fee.
FEE_BASIS_POINTS = 349
FIXED_FEES = {"USD": 49, "EUR": 39, "GBP": 29, "CAD": 59, "AUD": 59, "JPY": 40}

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_VALUE = re.compile(r"^-?(?:[0-9]+|[0-9]*\.[0-9]+)$")

_ERROR_NAMES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: ("AUTHENTICATION_FAILURE", ("Authentication failed due to invalid authentication credentials or a "
                                     "missing Authorization header.")),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    409: ("RESOURCE_CONFLICT", "The server has detected a conflict while processing this request."),
    422: ("UNPROCESSABLE_ENTITY", ("The requested action could not be performed, semantically incorrect, or "
                                   "failed business validation.")),
    429: ("RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    502: ("BAD_GATEWAY", "Bad gateway."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
    504: ("GATEWAY_TIMEOUT", "Gateway timeout."),
}


def _new_id(n=17):
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _iso(when):
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_value(minor, currency):
    """Minor units as PayPal's decimal string: (150, "USD") -> "1.50", (1500, "JPY") -> "1500"."""
    digits = DECIMALS[currency]
    if not digits:
        return str(minor)
    units, rest = divmod(minor, 10 ** digits)
    return f"{units}.{rest:0{digits}d}"


class PayPalFault(Exception):
    """An error answer in PayPal's shape."""

    def __init__(self, status, issue=None, description=None, name=None, message=None, field_=None):
        super().__init__(issue or name)
        default_name, default_message = _ERROR_NAMES.get(status, ("UNKNOWN_ERROR", "An error occurred."))
        self.status = status
        self.name = name or default_name
        self.message = message or default_message
        self.details = []
        if issue:
            detail = {"issue": issue, "description": description or issue.replace("_", " ").capitalize()}
            if field_:
                detail = {"field": field_, "location": "body", **detail}
            self.details.append(detail)

    def body(self):
        out = {"name": self.name, "message": self.message, "debug_id": _new_id(13).lower()}
        if self.details:
            out["details"] = self.details
        out["links"] = [{"href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{self.details[0]['issue']}"
                         if self.details else "https://developer.paypal.com/api/rest/reference/orders/v2/errors/",
                         "rel": "information_link", "method": "GET"}]
        return out


def parse_amount(amount, where="/amount", required=True):
    """PayPal's ``{"currency_code", "value"}`` as (minor units, currency), checked like PayPal."""
    if amount is None:
        if required:
            raise PayPalFault(400, "MISSING_REQUIRED_PARAMETER", "A required field / parameter is missing.",
                              field_=where)
        return None
    if not isinstance(amount, dict):
        raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform to the "
                          "expected format.", field_=where)
    currency, value = amount.get("currency_code"), amount.get("value")
    if currency is None or value is None:
        raise PayPalFault(400, "MISSING_REQUIRED_PARAMETER", "A required field / parameter is missing.",
                          field_=f"{where}/{'currency_code' if currency is None else 'value'}")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform to the "
                          "expected format.", field_=f"{where}/currency_code")
    if currency not in DECIMALS:
        raise PayPalFault(422, "CURRENCY_NOT_SUPPORTED", "Currency code is not currently supported. Please refer "
                          "https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported "
                          "currency codes.", field_=f"{where}/currency_code")
    if not isinstance(value, str) or len(value) > 32 or not _VALUE.match(value):
        raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform to the "
                          "expected format.", field_=f"{where}/value")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern rules it out
        raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", field_=f"{where}/value") from None
    digits = DECIMALS[currency]
    fraction = value.split(".", 1)[1] if "." in value else ""
    if len(fraction) > digits:
        raise PayPalFault(422, "DECIMAL_PRECISION", "If the currency supports decimals, only two decimal place "
                          "precision is supported." if digits else f"Currency {currency} does not support "
                          "decimals.", field_=f"{where}/value")
    if number <= 0:
        raise PayPalFault(422, "CANNOT_BE_ZERO_OR_NEGATIVE", "Must be greater than zero. If the currency "
                          "supports decimals, only two decimal place precision is supported.",
                          field_=f"{where}/value")
    minor = int(number.scaleb(digits))
    if minor >= 10 ** 12:
        raise PayPalFault(422, "AMOUNT_EXCEEDS_LIMIT", "The amount is too large.", field_=f"{where}/value")
    return minor, currency


def _money(minor, currency):
    return {"currency_code": currency, "value": to_value(minor, currency)}


def _canonical(event):
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---- state ---------------------------------------------------------------------------------

@dataclass
class App:
    """One REST app: one expert's PayPal account."""
    client_id: str
    secret: str
    merchant_name: str
    merchant_id: str = field(default_factory=lambda: _new_id(13))
    email: str = ""
    webhooks: list = field(default_factory=list)


@dataclass
class _Order:
    id: str
    app: str
    intent: str
    amount: int
    currency: str
    unit: dict
    status: str
    created: datetime
    updated: datetime
    context: str  # "experience_context", "application_context" or ""
    return_url: str = None
    cancel_url: str = None
    payer_id: str = None
    payments: list = field(default_factory=list)  # ("authorizations" | "captures", id)


@dataclass
class _Authorization:
    id: str
    app: str
    order_id: str
    amount: int
    currency: str
    status: str
    created: datetime
    updated: datetime
    expires: datetime
    invoice_id: str = None
    custom_id: str = None
    captured: int = 0
    captures: list = field(default_factory=list)


@dataclass
class _Capture:
    id: str
    app: str
    amount: int
    currency: str
    fee: int
    final: bool
    created: datetime
    updated: datetime
    order_id: str
    authorization_id: str = None
    invoice_id: str = None
    custom_id: str = None
    status: str = "COMPLETED"
    refunded: int = 0
    refunds: list = field(default_factory=list)


@dataclass
class _Refund:
    id: str
    app: str
    capture_id: str
    amount: int
    currency: str
    fee: int
    created: datetime
    invoice_id: str = None
    note: str = None
    status: str = "COMPLETED"


class _Dropped(ConnectionError):
    """Raised inside the WSGI app after the socket is shut: werkzeug treats it as a dropped connection."""


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

    def log(self, type, message, *args):
        if type == "error":
            super().log(type, message, *args)


class PayPalEmulator:
    """The emulator: ``PayPalEmulator().start(host="127.0.0.1", port=0)``, then ``.url``."""

    def __init__(self):
        self._lock = threading.RLock()
        self._apps = {}
        self._tokens = {}  # token -> (client_id, expires at)
        self._orders, self._authorizations, self._captures, self._refunds = {}, {}, {}, {}
        self._idempotent = {}  # (client_id, method, path, request id) -> (status, headers, body)
        self._faults = []  # [method, regex, status, body, times]
        self._drops = []  # [method, regex, after_processing, times]
        self._transmissions = {}  # transmission id -> (webhook id, time, canonical event)
        self._webhook_secret = secrets.token_bytes(32)
        self._offset = timedelta(0)
        self._server = self._thread = None
        self.url = None
        self.requests = []  # dicts: method, path, request_id, client_id, status, dropped

    # -- lifecycle --

    def start(self, host="127.0.0.1", port=0):
        """Serve on host:port (0: any free port) in a daemon thread; returns self (``.url`` set)."""
        self._server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"paypal-emulator:{self._server.server_port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None

    def __enter__(self):
        return self if self._server else self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- controls --

    def now(self):
        """The emulator's clock: the real UTC time plus what ``advance`` added."""
        return datetime.now(UTC).replace(microsecond=0) + self._offset

    def advance(self, seconds):
        """Move the emulator's clock (authorizations expire 29 days after they are made). OAuth
        tokens keep the real clock, so the SDK's cached token stays valid."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def add_app(self, client_id, secret, merchant_name=None):
        """Register (or update the secret and name of) a REST app; returns the ``App``."""
        with self._lock:
            app = self._apps.get(client_id)
            if app is None:
                app = App(client_id, secret, merchant_name or client_id)
                app.email = f"merchant-{app.merchant_id.lower()}@business.example.com"
                self._apps[client_id] = app
            else:
                app.secret = secret
                if merchant_name:
                    app.merchant_name = merchant_name
            return app

    def add_webhook(self, client_id, webhook_id):
        """Register a webhook id for an app (``webhook`` signs for the latest one by default)."""
        with self._lock:
            app = self._app(client_id)
            if webhook_id in app.webhooks:
                app.webhooks.remove(webhook_id)
            app.webhooks.append(webhook_id)
            return webhook_id

    def approve(self, order_id, payer_id=None):
        """The payer approves the order (as on the approval page). Returns the order's payer id."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                raise KeyError(f"no order {order_id!r}")
            if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
                raise ValueError(f"order {order_id} is {order.status}, it cannot be approved")
            order.status = "APPROVED"
            order.payer_id = order.payer_id or payer_id or _new_id(13)
            order.updated = self.now()
            return order.payer_id

    def expire(self, authorization_id):
        """Make an authorization EXPIRED now (PayPal does it 29 days after it was made)."""
        with self._lock:
            auth = self._authorizations[authorization_id]
            auth.status = "EXPIRED"
            auth.expires = min(auth.expires, self.now())
            auth.updated = self.now()

    def fail_next(self, method, path_regex, status, body=None, times=1):
        """Answer the next ``times`` requests whose method and path match (``re.search``) with
        ``status`` and ``body`` (a dict, or None for PayPal's error body of that status).
        Nothing is applied and nothing is remembered for ``PayPal-Request-Id``."""
        with self._lock:
            self._faults.append([method.upper(), re.compile(path_regex), status, body, times])

    def drop_next(self, method, path_regex, after_processing=True, times=1):
        """Close the connection of the next matching request without an answer. With
        ``after_processing`` the operation IS applied (and remembered for its
        ``PayPal-Request-Id``) first: PayPal did it, the client never heard."""
        with self._lock:
            self._drops.append([method.upper(), re.compile(path_regex), after_processing, times])

    def books(self, client_id):
        """One app's books: totals in minor units per currency, and the lists of orders,
        authorizations, captures and refunds as PayPal shows them now (full representations)."""
        with self._lock:
            self._app(client_id)
            orders = [o for o in self._orders.values() if o.app == client_id]
            auths = [a for a in self._authorizations.values() if a.app == client_id]
            caps = [c for c in self._captures.values() if c.app == client_id]
            refunds = [r for r in self._refunds.values() if r.app == client_id]
            totals = {}

            def total(currency):
                return totals.setdefault(currency, {"authorized": 0, "held": 0, "captured": 0, "refunded": 0,
                                                    "fees": 0, "net": 0})
            for a in auths:
                self._refresh(a)
                total(a.currency)["authorized"] += a.amount
                if a.status in ("CREATED", "PARTIALLY_CAPTURED"):
                    total(a.currency)["held"] += max(0, a.amount - a.captured)
            for c in caps:
                t = total(c.currency)
                t["captured"] += c.amount
                t["fees"] += c.fee
                t["net"] += c.amount - c.fee
            for r in refunds:
                t = total(r.currency)
                t["refunded"] += r.amount
                t["fees"] -= r.fee
                t["net"] -= r.amount - r.fee
            return {"client_id": client_id, "totals": totals,
                    "orders": [self._order_json(o) for o in orders],
                    "authorizations": [self._authorization_json(a) for a in auths],
                    "captures": [self._capture_json(c) for c in caps],
                    "refunds": [self._refund_json(r) for r in refunds]}

    # -- webhooks --

    def webhook(self, client_id, event_type, resource, webhook_id=None):
        """A genuine PayPal webhook event for the app: ``(headers, body bytes)``. Signed for
        ``webhook_id`` (default: the app's latest registered webhook)."""
        with self._lock:
            app = self._app(client_id)
            webhook_id = webhook_id or (app.webhooks[-1] if app.webhooks else "")
            now = self.now()
            event = {
                "id": f"WH-{_new_id(17)}-{_new_id(17)}", "event_version": "1.0", "create_time": _iso(now),
                "resource_type": _resource_type(event_type), "resource_version": "2.0",
                "event_type": event_type, "summary": event_type.replace(".", " ").capitalize(),
                "resource": copy.deepcopy(resource),
                "links": [{"href": f"{self.url}/v1/notifications/webhooks-events/PLACEHOLDER", "rel": "self",
                           "method": "GET"}],
            }
            event["links"][0]["href"] = event["links"][0]["href"].replace("PLACEHOLDER", event["id"])
            transmission_id, when = str(uuid.uuid4()), _iso(now)
            canonical = _canonical(event)
            self._transmissions[transmission_id] = (webhook_id, when, canonical)
            headers = {
                "Content-Type": "application/json",
                "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                "PAYPAL-CERT-URL": f"{self.url}/v1/notifications/certs/CERT-emulator",
                "PAYPAL-TRANSMISSION-ID": transmission_id,
                "PAYPAL-TRANSMISSION-SIG": self._signature(transmission_id, when, webhook_id, canonical),
                "PAYPAL-TRANSMISSION-TIME": when,
            }
            return headers, json.dumps(event).encode()

    def send_webhook(self, url, client_id, event_type, resource, webhook_id=None, timeout=10):
        """POST a genuine event to ``url``; returns the ``requests.Response``."""
        import requests

        headers, body = self.webhook(client_id, event_type, resource, webhook_id)
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    def _signature(self, transmission_id, when, webhook_id, canonical):
        message = f"{transmission_id}|{when}|{webhook_id}|{zlib.crc32(canonical)}".encode()
        return base64.b64encode(hmac.new(self._webhook_secret, message, hashlib.sha256).digest()).decode()

    # -- the WSGI app --

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        method, path = request.method.upper(), request.path
        request_id = request.headers.get("PayPal-Request-Id")
        entry = {"method": method, "path": path, "request_id": request_id, "client_id": None, "status": None,
                 "dropped": False}
        with self._lock:
            self.requests.append(entry)
            fault = self._take(self._faults, method, path)
            drop = self._take(self._drops, method, path)
        if drop is not None and not drop[2]:
            entry["dropped"] = True
            self._drop(environ)
        if fault is not None:
            status, body = fault[2], fault[3]
            if body is None:
                body = PayPalFault(status).body()
            response = _json_response(status, body)
        else:
            response = self._handle(request, method, path, request_id, entry)
        entry["status"] = response.status_code
        if drop is not None:
            entry["dropped"] = True
            self._drop(environ)
        return response(environ, start_response)

    @staticmethod
    def _take(rules, method, path):
        for rule in rules:
            if rule[0] == method and rule[1].search(path):
                rule[-1] -= 1
                if rule[-1] <= 0:
                    rules.remove(rule)
                return rule
        return None

    @staticmethod
    def _drop(environ):
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise _Dropped("dropped by the emulator")

    def _handle(self, request, method, path, request_id, entry):
        try:
            if path == "/v1/oauth2/token" and method == "POST":
                return self._token(request, entry)
            if path in ("/checkoutnow", "/checkoutnow/cancel"):
                return self._checkout_page(request, method, path)
            route = self._route(method, path)
            if route is None:
                raise PayPalFault(404, message="The specified resource does not exist.")
            handler, args = route
            client_id = self._authenticate(request)
            entry["client_id"] = client_id
            with self._lock:
                key = (client_id, method, path, request_id) if method == "POST" and request_id else None
                if key in self._idempotent:
                    status, headers, body = self._idempotent[key]
                    return Response(body, status=status, headers=headers)
                body = self._body(request) if method == "POST" else None
                representation = "return=representation" in (request.headers.get("Prefer") or "")
                status, payload = handler(client_id, body, representation, *args)
                response = _json_response(status, payload)
                if key is not None and 200 <= status < 300:
                    self._idempotent[key] = (status, list(response.headers.items()), response.get_data())
                return response
        except PayPalFault as fault:
            return _json_response(fault.status, fault.body())
        except _OAuthError as e:
            return _json_response(e.status, {"error": e.error, "error_description": e.description})

    def _route(self, method, path):
        for m, pattern, handler in (
            ("POST", r"/v2/checkout/orders", self._create_order),
            ("GET", r"/v2/checkout/orders/([^/]+)", self._get_order),
            ("POST", r"/v2/checkout/orders/([^/]+)/authorize", self._authorize_order),
            ("POST", r"/v2/checkout/orders/([^/]+)/capture", self._capture_order),
            ("GET", r"/v2/payments/authorizations/([^/]+)", self._get_authorization),
            ("POST", r"/v2/payments/authorizations/([^/]+)/capture", self._capture_authorization),
            ("POST", r"/v2/payments/authorizations/([^/]+)/void", self._void_authorization),
            ("GET", r"/v2/payments/captures/([^/]+)", self._get_capture),
            ("POST", r"/v2/payments/captures/([^/]+)/refund", self._refund_capture),
            ("GET", r"/v2/payments/refunds/([^/]+)", self._get_refund),
            ("POST", r"/v1/notifications/verify-webhook-signature", self._verify_webhook),
        ):
            match = re.fullmatch(pattern, path)
            if match and m == method:
                return handler, match.groups()
        return None

    @staticmethod
    def _body(request):
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise PayPalFault(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.") from None
        if not isinstance(body, dict):
            raise PayPalFault(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
        return body

    # -- OAuth --

    def _token(self, request, entry):
        header = request.headers.get("Authorization") or ""
        client_id = secret = None
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (ValueError, binascii.Error, UnicodeDecodeError):
                client_id = None
        with self._lock:
            app = self._apps.get(client_id) if client_id else None
            if app is None or not hmac.compare_digest(app.secret.encode(), (secret or "").encode()):
                return _json_response(401, {"error": "invalid_client",
                                            "error_description": "Client Authentication failed"})
            entry["client_id"] = client_id
            if request.form.get("grant_type") != "client_credentials":
                return _json_response(400, {"error": "unsupported_grant_type",
                                            "error_description": "Grant Type is NULL"
                                            if not request.form.get("grant_type") else "Unsupported grant type"})
            token = "A21AA" + secrets.token_urlsafe(48)
            # Tokens live by the real clock: ``advance`` ages payments, not the SDK's cached token.
            self._tokens[token] = (client_id, datetime.now(UTC) + timedelta(seconds=TOKEN_SECONDS))
            return _json_response(200, {
                "scope": "https://uri.paypal.com/services/payments/payment/authcapture openid "
                         "https://uri.paypal.com/services/payments/refund "
                         "https://uri.paypal.com/services/applications/webhooks",
                "access_token": token, "token_type": "Bearer", "app_id": f"APP-{app.merchant_id}",
                "expires_in": TOKEN_SECONDS, "nonce": f"{_iso(self.now())}{secrets.token_hex(8)}"})

    def _authenticate(self, request):
        header = request.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            raise PayPalFault(401)
        with self._lock:
            known = self._tokens.get(header[7:])
            if known is None or known[0] not in self._apps:
                raise PayPalFault(401)
            if known[1] <= datetime.now(UTC):
                raise _OAuthError(401, "invalid_token", "Token signature verification failed")
            return known[0]

    # -- orders --

    def _create_order(self, client_id, body, representation):
        intent = body.get("intent")
        if intent is None:
            raise PayPalFault(400, "MISSING_REQUIRED_PARAMETER", field_="/intent")
        if intent not in ("AUTHORIZE", "CAPTURE"):
            raise PayPalFault(400, "INVALID_PARAMETER_VALUE", "The value of a field is invalid.", field_="/intent")
        units = body.get("purchase_units")
        if not isinstance(units, list) or not units:
            raise PayPalFault(400, "MISSING_REQUIRED_PARAMETER", field_="/purchase_units")
        if len(units) > 1:
            raise PayPalFault(422, "MULTIPLE_PURCHASE_UNITS_NOT_SUPPORTED", "The emulator takes one purchase unit.")
        unit = units[0] if isinstance(units[0], dict) else {}
        minor, currency = parse_amount(unit.get("amount"), "/purchase_units/@reference_id=='default'/amount")
        context, source = "", body.get("payment_source")
        settings = {}
        if isinstance(source, dict) and isinstance(source.get("paypal"), dict) \
                and isinstance(source["paypal"].get("experience_context"), dict):
            context, settings = "experience_context", source["paypal"]["experience_context"]
        elif isinstance(body.get("application_context"), dict):
            context, settings = "application_context", body["application_context"]
        for name in ("return_url", "cancel_url"):
            url = settings.get(name)
            if url is not None and (not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https")):
                raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform to the "
                                  "expected format.", field_=f"/payment_source/paypal/experience_context/{name}")
        kept = {k: unit[k] for k in ("reference_id", "description", "custom_id", "invoice_id", "soft_descriptor")
                if isinstance(unit.get(k), str)}
        kept.setdefault("reference_id", "default")
        now = self.now()
        order = _Order(id=_new_id(), app=client_id, intent=intent, amount=minor, currency=currency, unit=kept,
                       status="PAYER_ACTION_REQUIRED" if context == "experience_context" else "CREATED",
                       created=now, updated=now, context=context, return_url=settings.get("return_url"),
                       cancel_url=settings.get("cancel_url"))
        self._orders[order.id] = order
        return 201, self._order_json(order, minimal=not representation)

    @staticmethod
    def _owned(store, client_id, resource_id):
        """A resource of this app, or PayPal's 404 (another app's resources do not exist for it)."""
        resource = store.get(resource_id)
        if resource is None or resource.app != client_id:
            raise PayPalFault(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist. Please check the "
                              "resource ID and try again.")
        return resource

    def _order(self, client_id, order_id):
        return self._owned(self._orders, client_id, order_id)

    def _get_order(self, client_id, body, representation, order_id):
        return 200, self._order_json(self._order(client_id, order_id))

    def _approved(self, order, action):
        if order.intent != action:
            raise PayPalFault(422, "ACTION_DOES_NOT_MATCH_INTENT", f"Order was created with an intent to "
                              f"'{order.intent}'. Please use /v2/checkout/orders/order_id/"
                              f"{order.intent.lower()} to complete the transaction.")
        if order.status == "COMPLETED":
            issue = "ORDER_ALREADY_AUTHORIZED" if action == "AUTHORIZE" else "ORDER_ALREADY_CAPTURED"
            raise PayPalFault(422, issue, "Order already " + ("authorized." if action == "AUTHORIZE"
                                                              else "captured.") +
                              " If 'intent=CAPTURE' only one capture per order is allowed.")
        if order.status == "PAYER_ACTION_REQUIRED" and order.context == "experience_context":
            raise PayPalFault(422, "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment. "
                              "Please redirect the payer to the 'rel':'payer-action' HATEOAS link returned as "
                              "part of the response prior to authorizing or capturing the order.")
        if order.status != "APPROVED":
            raise PayPalFault(422, "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment. "
                              "Please redirect the payer to the 'rel':'approve' url returned as part of the "
                              "HATEOAS links within the Create Order call or provide a valid payment_source in "
                              "the request.")

    def _authorize_order(self, client_id, body, representation, order_id):
        order = self._order(client_id, order_id)
        self._approved(order, "AUTHORIZE")
        now = self.now()
        auth = _Authorization(id=_new_id(), app=client_id, order_id=order.id, amount=order.amount,
                              currency=order.currency, status="CREATED", created=now, updated=now,
                              expires=now + timedelta(days=AUTHORIZATION_DAYS),
                              invoice_id=order.unit.get("invoice_id"), custom_id=order.unit.get("custom_id"))
        self._authorizations[auth.id] = auth
        order.payments.append(("authorizations", auth.id))
        order.status, order.updated = "COMPLETED", now
        return 201, self._order_json(order, minimal=not representation, payments=True)

    def _capture_order(self, client_id, body, representation, order_id):
        order = self._order(client_id, order_id)
        self._approved(order, "CAPTURE")
        now = self.now()
        capture = _Capture(id=_new_id(), app=client_id, amount=order.amount, currency=order.currency,
                           fee=_fee(order.amount, order.currency), final=True, created=now, updated=now,
                           order_id=order.id, invoice_id=order.unit.get("invoice_id"),
                           custom_id=order.unit.get("custom_id"))
        self._captures[capture.id] = capture
        order.payments.append(("captures", capture.id))
        order.status, order.updated = "COMPLETED", now
        return 201, self._order_json(order, minimal=not representation, payments=True)

    # -- authorizations --

    def _refresh(self, auth):
        if auth.status in ("CREATED", "PARTIALLY_CAPTURED") and auth.expires <= self.now():
            auth.status = "EXPIRED"

    def _authorization(self, client_id, authorization_id):
        auth = self._owned(self._authorizations, client_id, authorization_id)
        self._refresh(auth)
        return auth

    def _get_authorization(self, client_id, body, representation, authorization_id):
        return 200, self._authorization_json(self._authorization(client_id, authorization_id))

    def _capture_authorization(self, client_id, body, representation, authorization_id):
        auth = self._authorization(client_id, authorization_id)
        if auth.status == "VOIDED":
            raise PayPalFault(422, "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or "
                              "reauthorized.")
        if auth.status == "EXPIRED":
            raise PayPalFault(422, "AUTHORIZATION_EXPIRED", "An expired authorization cannot be captured.")
        if auth.status == "CAPTURED":
            raise PayPalFault(422, "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been previously "
                              "captured and hence cannot be captured again.")
        if "amount" in body:
            minor, currency = parse_amount(body["amount"])
            if currency != auth.currency:
                raise PayPalFault(422, "CURRENCY_MISMATCH", "Currency of capture must be the same as currency of "
                                  "authorization.", field_="/amount/currency_code")
        else:
            minor, currency = max(0, auth.amount - auth.captured), auth.currency
            if minor <= 0:
                raise PayPalFault(422, "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has been previously "
                                  "captured and hence cannot be captured again.")
        if (auth.captured + minor) * 100 > auth.amount * CAPTURE_CEILING_PERCENT:
            raise PayPalFault(422, "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds allowable limit. "
                              "Please contact customer service or your account manager to request the change "
                              "to your overage limit. The default overage limit is 115%, which allows the sum "
                              "of all captures to be up to 115% of the order amount.")
        final = body.get("final_capture", False)
        if not isinstance(final, bool):
            raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", field_="/final_capture")
        invoice_id = body.get("invoice_id") or auth.invoice_id
        if body.get("invoice_id") and any(c.invoice_id == body["invoice_id"] and c.app == client_id
                                          for c in self._captures.values()):
            raise PayPalFault(422, "DUPLICATE_INVOICE_ID", "Requested invoice number has been previously "
                              "captured. Possible duplicate transaction.")
        now = self.now()
        capture = _Capture(id=_new_id(), app=client_id, amount=minor, currency=currency,
                           fee=_fee(minor, currency), final=final, created=now, updated=now,
                           order_id=auth.order_id, authorization_id=auth.id, invoice_id=invoice_id,
                           custom_id=auth.custom_id)
        self._captures[capture.id] = capture
        auth.captured += minor
        auth.captures.append(capture.id)
        auth.status = "CAPTURED" if final or auth.captured >= auth.amount else "PARTIALLY_CAPTURED"
        auth.updated = now
        order = self._orders.get(auth.order_id)
        if order is not None:
            order.payments.append(("captures", capture.id))
        return 201, self._capture_json(capture, minimal=not representation)

    def _void_authorization(self, client_id, body, representation, authorization_id):
        auth = self._authorization(client_id, authorization_id)
        if auth.status in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise PayPalFault(422, "PREVIOUSLY_CAPTURED", "Authorization has been previously captured and hence "
                              "cannot be voided.")
        if auth.status == "VOIDED":
            raise PayPalFault(422, "PREVIOUSLY_VOIDED", "Authorization has been previously voided and hence "
                              "cannot be voided again.")
        if auth.status == "EXPIRED":
            raise PayPalFault(422, "AUTHORIZATION_EXPIRED", "An expired authorization cannot be voided.")
        auth.status, auth.updated = "VOIDED", self.now()
        if representation:
            return 200, self._authorization_json(auth)
        return 204, None

    # -- captures and refunds --

    def _capture(self, client_id, capture_id):
        return self._owned(self._captures, client_id, capture_id)

    def _get_capture(self, client_id, body, representation, capture_id):
        return 200, self._capture_json(self._capture(client_id, capture_id))

    def _refund_capture(self, client_id, body, representation, capture_id):
        capture = self._capture(client_id, capture_id)
        if capture.status == "REFUNDED" or capture.refunded >= capture.amount:
            raise PayPalFault(422, "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
        if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise PayPalFault(422, "REFUND_NOT_ALLOWED", f"A {capture.status} capture cannot be refunded.")
        remaining = capture.amount - capture.refunded
        if body.get("amount") is not None:
            minor, currency = parse_amount(body["amount"])
            if currency != capture.currency:
                raise PayPalFault(422, "REFUND_CURRENCY_MISMATCH", "Refund must be in the same currency as the "
                                  "capture.", field_="/amount/currency_code")
            if minor > remaining:
                raise PayPalFault(422, "REFUND_AMOUNT_EXCEEDED", "The refund amount must be less than or equal to "
                                  "the capture amount that has not yet been refunded.")
        else:
            minor, currency = remaining, capture.currency
        # The fee comes back in proportion (what PayPal does for a full refund; rounded down for parts).
        fee = capture.fee if minor == remaining else capture.fee * minor // capture.amount
        fee = min(fee, capture.fee - sum(self._refunds[r].fee for r in capture.refunds))
        now = self.now()
        refund = _Refund(id=_new_id(), app=client_id, capture_id=capture.id, amount=minor, currency=currency,
                         fee=fee, created=now, invoice_id=body.get("invoice_id") or capture.invoice_id,
                         note=body.get("note_to_payer"))
        self._refunds[refund.id] = refund
        capture.refunded += minor
        capture.refunds.append(refund.id)
        capture.status = "REFUNDED" if capture.refunded >= capture.amount else "PARTIALLY_REFUNDED"
        capture.updated = now
        return 201, self._refund_json(refund, minimal=not representation)

    def _get_refund(self, client_id, body, representation, refund_id):
        return 200, self._refund_json(self._owned(self._refunds, client_id, refund_id))

    # -- webhook verification --

    def _verify_webhook(self, client_id, body, representation):
        names = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id",
                 "webhook_event")
        missing = [n for n in names if not body.get(n)]
        if missing:
            raise PayPalFault(400, "MISSING_REQUIRED_PARAMETER", f"{missing[0]} is required.", name="VALIDATION_ERROR",
                              message="Invalid request - see details", field_=f"/{missing[0]}")
        if not isinstance(body["webhook_event"], dict):
            raise PayPalFault(400, "INVALID_PARAMETER_SYNTAX", name="VALIDATION_ERROR",
                              message="Invalid request - see details", field_="/webhook_event")
        ok = False
        sent = self._transmissions.get(body["transmission_id"])
        app = self._apps[client_id]
        if sent is not None and body["webhook_id"] in app.webhooks:
            webhook_id, when, canonical = sent
            event = _canonical(body["webhook_event"])
            expected = self._signature(body["transmission_id"], body["transmission_time"], body["webhook_id"], event)
            ok = (webhook_id == body["webhook_id"] and when == body["transmission_time"] and canonical == event
                  and body["auth_algo"] == "SHA256withRSA"
                  and body["cert_url"] == f"{self.url}/v1/notifications/certs/CERT-emulator"
                  and isinstance(body["transmission_sig"], str)
                  and hmac.compare_digest(expected, body["transmission_sig"]))
        return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}

    # -- the payer's approval page --

    def _checkout_page(self, request, method, path):
        token = request.values.get("token", "")
        with self._lock:
            order = self._orders.get(token)
            if order is None:
                return _page(404, "Not found", "<p>This PayPal checkout link is not valid.</p>")
            app = self._apps.get(order.app)
            merchant = app.merchant_name if app else order.app
            amount = f"{to_value(order.amount, order.currency)} {order.currency}"
            if path == "/checkoutnow/cancel":
                return _page(200, "Payment cancelled", '<p id="cancelled">You cancelled this payment. You can close '
                             "this window.</p>")
            if method == "POST":
                if request.form.get("action") != "approve":
                    return _page(400, "Bad request", "<p>Nothing to do.</p>")
                if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
                    self.approve(order.id)
                elif order.status != "APPROVED":
                    return _page(409, "Payment done", f"<p>This payment is {order.status.lower()} already.</p>")
                if order.return_url:
                    return Response(status=303, headers={"Location": _add_query(order.return_url, {
                        "token": order.id, "PayerID": order.payer_id})})
                return _page(200, "Payment approved", '<p id="done">Payment approved, you can close this '
                             "window.</p>")
            if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
                return _page(200, "Payment approved" if order.status == "APPROVED" else "Payment done",
                             f'<p id="done">This payment is {order.status.lower()} already, you can close this '
                             "window.</p>")
            cancel = _add_query(order.cancel_url, {"token": order.id}) if order.cancel_url \
                else f"/checkoutnow/cancel?{urlencode({'token': order.id})}"
            description = order.unit.get("description")
            return _page(200, f"Pay {amount} to {merchant}", (
                f'<h1 id="summary">Pay {html.escape(amount)} to {html.escape(merchant)}</h1>'
                + (f'<p id="description">{html.escape(description)}</p>' if description else "")
                + f'<p class="order">Order {html.escape(order.id)}</p>'
                f'<form method="post" action="/checkoutnow">'
                f'<input type="hidden" name="token" value="{html.escape(order.id)}">'
                f'<input type="hidden" name="action" value="approve">'
                f'<button id="approve" type="submit">Pay with PayPal</button></form>'
                f'<p><a id="cancel" href="{html.escape(cancel)}">Cancel and return</a></p>'))

    # -- representations --

    def _link(self, path, rel, method="GET"):
        return {"href": f"{self.url}{path}", "rel": rel, "method": method}

    def _order_json(self, order, minimal=False, payments=True):
        links = [self._link(f"/v2/checkout/orders/{order.id}", "self")]
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            rel = "payer-action" if order.context == "experience_context" else "approve"
            links.append({"href": f"{self.url}/checkoutnow?{urlencode({'token': order.id})}", "rel": rel,
                          "method": "GET"})
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            links.append(self._link(f"/v2/checkout/orders/{order.id}", "update", "PATCH"))
        if order.status == "APPROVED":
            action = order.intent.lower()
            links.append(self._link(f"/v2/checkout/orders/{order.id}/{action}", action, "POST"))
        out = {"id": order.id, "status": order.status}
        if minimal:
            if order.payer_id or order.payments:
                out["payment_source"] = self._payment_source(order)
            if order.payments:
                out["purchase_units"] = [{"reference_id": order.unit["reference_id"],
                                          "payments": self._order_payments(order)}]
            if order.payer_id:
                out["payer"] = self._payer(order)
            out["links"] = links
            return out
        app = self._apps.get(order.app)
        unit = dict(order.unit)
        unit["amount"] = _money(order.amount, order.currency)
        unit["payee"] = {"email_address": app.email if app else "", "merchant_id": app.merchant_id if app else ""}
        if payments and order.payments:
            unit["payments"] = self._order_payments(order)
        out = {"id": order.id, "intent": order.intent, "status": order.status}
        if order.payer_id or order.context == "experience_context":
            out["payment_source"] = self._payment_source(order)
        out["purchase_units"] = [unit]
        if order.payer_id:
            out["payer"] = self._payer(order)
        out["create_time"] = _iso(order.created)
        if order.updated != order.created:
            out["update_time"] = _iso(order.updated)
        out["links"] = links
        return out

    def _payer(self, order):
        return {"name": {"given_name": "Pat", "surname": "Payer"},
                "email_address": f"payer-{order.payer_id.lower()}@personal.example.com",
                "payer_id": order.payer_id, "address": {"country_code": "US"}}

    def _payment_source(self, order):
        paypal = {}
        if order.payer_id:
            paypal = {"email_address": f"payer-{order.payer_id.lower()}@personal.example.com",
                      "account_id": order.payer_id, "account_status": "VERIFIED",
                      "name": {"given_name": "Pat", "surname": "Payer"}, "address": {"country_code": "US"}}
        return {"paypal": paypal}

    def _order_payments(self, order):
        out = {}
        for kind, pid in order.payments:
            if kind == "authorizations":
                out.setdefault(kind, []).append(self._authorization_json(self._authorizations[pid]))
            else:
                out.setdefault(kind, []).append(self._capture_json(self._captures[pid]))
        return out

    def _authorization_json(self, auth, minimal=False):
        self._refresh(auth)
        base = f"/v2/payments/authorizations/{auth.id}"
        links = [self._link(base, "self")]
        if auth.status in ("CREATED", "PARTIALLY_CAPTURED"):
            links += [self._link(f"{base}/capture", "capture", "POST"), self._link(f"{base}/void", "void", "POST"),
                      self._link(f"{base}/reauthorize", "reauthorize", "POST")]
        links.append(self._link(f"/v2/checkout/orders/{auth.order_id}", "up"))
        out = {"id": auth.id, "status": auth.status}
        if auth.status == "PARTIALLY_CAPTURED":
            out["status_details"] = {"reason": "PARTIALLY_CAPTURED"}
        if minimal:
            out["links"] = links
            return out
        out["amount"] = _money(auth.amount, auth.currency)
        if auth.invoice_id:
            out["invoice_id"] = auth.invoice_id
        if auth.custom_id:
            out["custom_id"] = auth.custom_id
        out["seller_protection"] = {"status": "ELIGIBLE",
                                    "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"]}
        out.update({"expiration_time": _iso(auth.expires), "create_time": _iso(auth.created),
                    "update_time": _iso(auth.updated), "links": links})
        return out

    def _capture_json(self, capture, minimal=False):
        base = f"/v2/payments/captures/{capture.id}"
        links = [self._link(base, "self"), self._link(f"{base}/refund", "refund", "POST")]
        if capture.authorization_id:
            links.append(self._link(f"/v2/payments/authorizations/{capture.authorization_id}", "up"))
        else:
            links.append(self._link(f"/v2/checkout/orders/{capture.order_id}", "up"))
        out = {"id": capture.id, "status": capture.status}
        if minimal:
            out["links"] = links
            return out
        out["amount"] = _money(capture.amount, capture.currency)
        out["final_capture"] = capture.final
        if capture.invoice_id:
            out["invoice_id"] = capture.invoice_id
        if capture.custom_id:
            out["custom_id"] = capture.custom_id
        out["seller_protection"] = {"status": "ELIGIBLE",
                                    "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"]}
        out["seller_receivable_breakdown"] = {
            "gross_amount": _money(capture.amount, capture.currency),
            "paypal_fee": _money(capture.fee, capture.currency),
            "net_amount": _money(capture.amount - capture.fee, capture.currency)}
        if capture.refunds:
            refunded_fee = sum(self._refunds[r].fee for r in capture.refunds)
            out["seller_receivable_breakdown"]["receivable_amount"] = _money(
                capture.amount - capture.fee - capture.refunded + refunded_fee, capture.currency)
        out.update({"create_time": _iso(capture.created), "update_time": _iso(capture.updated), "links": links})
        return out

    def _refund_json(self, refund, minimal=False):
        links = [self._link(f"/v2/payments/refunds/{refund.id}", "self"),
                 self._link(f"/v2/payments/captures/{refund.capture_id}", "up")]
        out = {"id": refund.id, "status": refund.status}
        if minimal:
            out["links"] = links
            return out
        capture = self._captures[refund.capture_id]
        out["amount"] = _money(refund.amount, refund.currency)
        if refund.invoice_id:
            out["invoice_id"] = refund.invoice_id
        if refund.note:
            out["note_to_payer"] = refund.note
        out["seller_payable_breakdown"] = {
            "gross_amount": _money(refund.amount, refund.currency),
            "paypal_fee": _money(refund.fee, refund.currency),
            "net_amount": _money(refund.amount - refund.fee, refund.currency),
            "total_refunded_amount": _money(capture.refunded, capture.currency)}
        out.update({"create_time": _iso(refund.created), "update_time": _iso(refund.created), "links": links})
        return out

    def _app(self, client_id):
        app = self._apps.get(client_id)
        if app is None:
            raise KeyError(f"no PayPal app {client_id!r} at the emulator")
        return app


class _OAuthError(Exception):
    def __init__(self, status, error, description):
        super().__init__(error)
        self.status, self.error, self.description = status, error, description


def _fee(minor, currency):
    variable = (minor * FEE_BASIS_POINTS + 5000) // 10000
    return min(minor, variable + FIXED_FEES.get(currency, 0))


def _resource_type(event_type):
    if event_type.startswith(("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.REFUND")):
        return "refund"
    if event_type.startswith("PAYMENT.CAPTURE"):
        return "capture"
    if event_type.startswith("PAYMENT.AUTHORIZATION"):
        return "authorization"
    if event_type.startswith("CHECKOUT.ORDER"):
        return "checkout-order"
    if event_type.startswith("CUSTOMER.DISPUTE"):
        return "dispute"
    return "event"


def _json_response(status, payload):
    if payload is None:
        return Response(status=status)
    headers = {"Paypal-Debug-Id": _new_id(13).lower()}
    return Response(json.dumps(payload), status=status, mimetype="application/json", headers=headers)


def _add_query(url, params):
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _page(status, title, body):
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} - PayPal (emulator)</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}"
            "h1{font-size:1.3rem}.order{color:#666;font-size:.85rem}"
            "button{background:#ffc439;border:0;border-radius:1.5rem;padding:.8rem 2rem;font-size:1rem;"
            "font-weight:600;cursor:pointer;width:100%}a{color:#0070ba}"
            f"</style></head><body><p><b>PayPal</b> <small>(emulator)</small></p>{body}</body></html>")
    return Response(page, status=status, mimetype="text/html")


def main(argv=None):
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m callme.paypal_emulator",
                                     description="Serve the PayPal emulator (OAuth, orders, payments, webhooks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--app", action="append", default=[], metavar="CLIENT_ID:SECRET[:WEBHOOK_ID]",
                        help="a REST app to accept (repeatable)")
    args = parser.parse_args(argv)
    emulator = PayPalEmulator()
    for spec in args.app:
        client_id, _, rest = spec.partition(":")
        secret, _, webhook_id = rest.partition(":")
        if not client_id or not secret:
            parser.error(f"--app wants CLIENT_ID:SECRET, not {spec!r}")
        emulator.add_app(client_id, secret)
        if webhook_id:
            emulator.add_webhook(client_id, webhook_id)
    emulator.start(args.host, args.port)
    print(emulator.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
