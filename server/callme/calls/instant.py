"""Use cases of a visitor on an expert's button: open the PayPal hold, start an instant call.

Each checks what the visitor's request must meet (the page may embed the expert, the price
shown is still the price, the expert is online, rings are within their limit, the hold is
authorized and big enough) and refuses with a ``CallmeError`` carrying the code, message and
HTTP status the API answers. No Flask here: the view passes in where the request came from.
"""
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..experts.accounts import published_expert
from ..errors import CallmeError, RateLimited
from ..money import payments
from ..money.paypal import approve_url
from .lifecycle import CallError


@dataclass(frozen=True)
class Services:
    """What the use cases need of the app: the call service, the rate limiter, the config."""

    calls: Any
    limiter: Any
    config: Mapping


@dataclass(frozen=True)
class Visit:
    """Where a request came from: the browser's ``Origin`` header, its address, callme's own origin."""

    page_origin: Optional[str]
    remote_addr: str
    own_origin: str


def expert_by_handle(handle):
    """The expert with this handle, or 404 expert_not_found."""
    expert = published_expert(handle)
    if expert is None:
        raise CallmeError("expert_not_found", f"Expert {handle!r} does not exist.", status=404)
    return expert


def origin_allowed(expert, origin, own_origin):
    from ..experts.domains import allowed_origins  # the expert's list and their verified domains

    return origin == own_origin or origin in allowed_origins(expert)


def check_origins(expert, origins, own_origin):
    """403 unless every given origin (the browser's, the one the widget reports) may embed the expert."""
    for origin in origins:
        if origin and not origin_allowed(expert, origin, own_origin):
            raise CallmeError("origin_not_allowed", f"{origin} may not embed {expert.display_name}'s button.",
                              status=403)


def check_price(expert, shown):
    """409 price_changed, with the current price, unless the price the visitor saw is still the price."""
    if (shown["amount"], shown["currency"]) != (expert.price_minor, expert.currency):
        raise CallmeError("price_changed", "The price has changed since it was shown.", status=409,
                          extra={"price": {"amount": expert.price_minor, "currency": expert.currency}})


def hit(limiter, rule, key):
    """Count one attempt against ``rule`` ("count/seconds"); 429 rate_limited when over."""
    wait = limiter.hit(key, rule)
    if wait:
        raise RateLimited(wait)


def _visited(services, visit, counter, handle, origin):
    """The checks every visitor request meets first; returns the expert."""
    hit(services.limiter, services.config["RATE_LIMIT_CALLS"], f"{counter}:{visit.remote_addr}")
    expert = expert_by_handle(handle)
    check_origins(expert, (visit.page_origin, origin), visit.own_origin)
    return expert


def open_hold_order(services, visit, expert, price, origin=None, return_url=None):
    """Create the PayPal order (intent AUTHORIZE) holding cap_minutes x price for a paid call.

    Returns (payment, approve_url, amount in minor units).
    """
    expert = _visited(services, visit, "orders", expert, origin)
    check_price(expert, price)
    if expert.price_minor == 0:
        raise CallmeError("payment_not_needed", f"Calls with {expert.display_name} are free.", status=409)
    own = visit.own_origin
    return_url = return_url or f"{own}/paypal/return"
    if not return_url.startswith(f"{own}/"):
        raise CallmeError("invalid", "Some fields are not valid.", status=422,
                          fields={"return_url": [f"Must be a page of {own}."]})
    amount = expert.hold_minor
    payment, order = payments.create_order(
        expert, amount, expert.currency, services.config, return_url=return_url, cancel_url=f"{own}/paypal/cancel",
        description=f"Call with {expert.display_name}: up to {expert.cap_minutes} min, first "
                    f"{expert.free_seconds} s free; only the minutes talked are charged")
    url = approve_url(order)
    if not url:
        raise CallmeError("paypal_bad_answer", "PayPal gave no approval link; nothing was charged.", status=502)
    return payment, url, amount


def start_instant_call(services, visit, expert, price, origin=None, kind="instant", payment=None):
    """Ring the expert now, on their current terms, paid by the visitor's approved hold.

    Returns (call, the visitor's grant: token, expiry and ICE servers).
    """
    expert = _visited(services, visit, "calls", expert, origin)
    if kind != "instant":
        raise CallmeError("booking_required", f"A {kind} call needs a booking first.", status=409)
    check_price(expert, price)
    status = services.calls.status(expert.id)
    if status != "online":
        raise CallmeError(f"expert_{status}", f"{expert.display_name} is {status}.", status=409,
                          extra={"status": status})
    hit(services.limiter, services.config["RATE_LIMIT_RINGS"], f"rings:{expert.id}")
    hold = hold_for_call(expert, payment, services.config) if expert.price_minor > 0 else None
    try:
        call = services.calls.create(expert, kind, origin, payment=hold)
    except CallError as e:
        # Taken meanwhile: the widget shows the expert busy from this error alone.
        e.extra = {**e.extra, "status": "busy"}
        raise
    return call, services.calls.grant(call, "visitor")


def hold_for_call(expert, ref, config):
    """The authorized PayPal hold a paid call needs, or 402/409 with nothing rung."""
    if not expert.paypal_connected:
        raise CallmeError("payments_not_set_up", f"{expert.display_name} has not connected PayPal yet, so paid "
                          "calls are not possible right now.", status=409)
    if not ref:
        raise CallmeError("payment_required", "A paid call needs an approved PayPal hold: create one with "
                          "POST /api/v1/payments/orders.", status=402)
    return payments.authorize_hold(expert, ref["order_id"], expert.hold_minor, expert.currency, config)
