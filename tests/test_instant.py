"""The visitor's use cases without HTTP: opening the PayPal hold, starting an instant call."""
import pytest

from callme.calls import instant
from callme.errors import CallmeError, RateLimited
from callme.extensions import db
from callme.models import Call, Payment

OWN = "http://localhost"
ORIGIN = "https://ray.example"
PRICE = {"amount": 150, "currency": "USD"}


@pytest.fixture
def services(app, service):
    return instant.Services(service, app.extensions["callme.limiter"], app.config)


def visit(page_origin=ORIGIN, remote_addr="10.0.0.1"):
    return instant.Visit(page_origin, remote_addr, OWN)


def calls():
    return db.session.scalar(db.select(db.func.count()).select_from(Call))


def refused(fn, *args, **kwargs):
    with pytest.raises(CallmeError) as e:
        fn(*args, **kwargs)
    return e.value


def test_a_free_call_starts_and_grants_the_visitor(services, make_expert):
    expert = make_expert(handle="free", price=0, online=True)
    call, grant = instant.start_instant_call(services, visit(), "free", {"amount": 0, "currency": "USD"}, ORIGIN)
    assert (call.expert_id, call.state, call.origin, call.payment) == (expert.id, "created", ORIGIN, None)
    assert set(grant) >= {"token", "expires_in", "ice_servers"}


def test_a_paid_call_takes_its_approved_hold(services, make_expert, emulator):
    make_expert(handle="ray", online=True)
    payment, url, amount = instant.open_hold_order(services, visit(), "ray", PRICE, ORIGIN)
    assert url and amount == 60 * 150 and payment.state == "created"
    emulator.approve(payment.order_id)
    call, _ = instant.start_instant_call(services, visit(), "ray", PRICE, ORIGIN,
                                         payment={"order_id": payment.order_id})
    assert db.session.get(Payment, payment.id).call_id == call.id


@pytest.mark.parametrize("case, status, code, extra", [
    ("unknown expert", 404, "expert_not_found", {}),
    ("page origin", 403, "origin_not_allowed", {}),
    ("claimed origin", 403, "origin_not_allowed", {}),
    ("booking", 409, "booking_required", {}),
    ("stale price", 409, "price_changed", {"price": PRICE}),
    ("offline", 409, "expert_offline", {"status": "offline"}),
    ("busy", 409, "expert_busy", {"status": "busy"}),
    ("no hold", 402, "payment_required", {}),
    ("unknown hold", 402, "payment_invalid", {}),
    ("no paypal", 409, "payments_not_set_up", {}),
])
def test_start_instant_call_refusals_ring_nobody(services, make_expert, make_call, case, status, code, extra):
    expert = make_expert(handle="ray", online=case != "offline", paypal=case != "no paypal")
    if case == "busy":
        make_call(expert)
    before = calls()
    args = dict(expert="nobody" if case == "unknown expert" else "ray",
                price={"amount": 149, "currency": "USD"} if case == "stale price" else PRICE,
                origin="https://evil.example" if case == "claimed origin" else ORIGIN,
                kind="consultation" if case == "booking" else "instant",
                payment={"order_id": "NO-SUCH-ORDER"} if case == "unknown hold" else None)
    error = refused(instant.start_instant_call, services,
                    visit(page_origin="https://evil.example" if case == "page origin" else ORIGIN), **args)
    assert (error.status, error.code) == (status, code) and error.message
    assert error.extra == extra
    assert calls() == before


@pytest.mark.parametrize("case, status, code", [
    ("free expert", 409, "payment_not_needed"),
    ("foreign return url", 422, "invalid"),
    ("stale price", 409, "price_changed"),
    ("no paypal", 409, "payments_not_set_up"),
])
def test_open_hold_order_refusals(services, make_expert, case, status, code):
    make_expert(handle="ray", price=0 if case == "free expert" else 150, paypal=case != "no paypal")
    price = {"amount": 0 if case == "free expert" else 150 - (case == "stale price"), "currency": "USD"}
    error = refused(instant.open_hold_order, services, visit(), "ray", price, ORIGIN,
                    return_url="https://evil.example/return" if case == "foreign return url" else None)
    assert (error.status, error.code) == (status, code)
    if case == "foreign return url":
        assert error.fields == {"return_url": [f"Must be a page of {OWN}."]}


def test_rings_are_limited_per_expert(app, services, make_expert):
    app.config["RATE_LIMIT_RINGS"] = "1/60"
    services.limiter.clock = lambda: 30.0
    make_expert(handle="free", price=0, online=True)
    first, _ = instant.start_instant_call(services, visit(), "free", {"amount": 0, "currency": "USD"})
    services.calls.hangup(first.id, "visitor")
    with pytest.raises(RateLimited) as e:
        instant.start_instant_call(services, visit(remote_addr="10.9.9.9"), "free", {"amount": 0, "currency": "USD"})
    assert (e.value.status, e.value.headers) == (429, {"Retry-After": "30"})


def test_the_own_origin_may_always_embed(services, make_expert):
    make_expert(handle="free", price=0, online=True, origins=())
    call, _ = instant.start_instant_call(services, visit(page_origin=OWN), "free", {"amount": 0, "currency": "USD"},
                                         OWN)
    assert call.origin == OWN
