"""Money amounts at the PayPal boundary (``callme.money.currency``): integer minor units to and from
PayPal's decimal strings by each currency's digits, what PayPal takes, and the same table in the
widget and on /currencies."""
import re
from pathlib import Path

import pytest

from callme.money.currency import EXPONENTS, CurrencyError, from_paypal_value, paypal_payable, to_paypal_value

from .conftest import API

ROOT = Path(__file__).resolve().parent.parent


# ---- amounts at the boundary ---------------------------------------------------------------

@pytest.mark.parametrize("minor, currency, value", [
    (0, "USD", "0.00"), (1, "USD", "0.01"), (10, "USD", "0.10"), (150, "USD", "1.50"), (9000, "USD", "90.00"),
    (123_456_789_012, "USD", "1234567890.12"), (99, "EUR", "0.99"), (100_000_001, "EUR", "1000000.01"),
    (0, "JPY", "0"), (1, "JPY", "1"), (150, "JPY", "150"), (10_000_000_000, "JPY", "10000000000"),
    (100, "HUF", "1"), (15000, "HUF", "150"), (2500, "TWD", "25"), (1, "GBP", "0.01"),
])
def test_to_and_from_paypal_value(minor, currency, value):
    assert to_paypal_value(minor, currency) == value
    assert from_paypal_value(value, currency) == minor
    assert type(from_paypal_value(value, currency)) is int


@pytest.mark.parametrize("value, currency, minor", [
    ("1.5", "USD", 150), ("1", "USD", 100), ("0.10", "USD", 10), ("150", "HUF", 15000), ("150.00", "JPY", 150),
])
def test_from_paypal_value_takes_any_exact_spelling(value, currency, minor):
    assert from_paypal_value(value, currency) == minor


@pytest.mark.parametrize("minor, currency", [
    (1.5, "USD"), (150.0, "USD"), ("150", "USD"), (True, "USD"), (-1, "USD"), (None, "USD"),
    (150, "XXX"), (150, "KWD"),        # PayPal does not take them
    (15050, "HUF"), (1, "TWD"),        # PayPal takes whole forints and dollars only
])
def test_to_paypal_value_refuses(minor, currency):
    with pytest.raises(CurrencyError):
        to_paypal_value(minor, currency)


@pytest.mark.parametrize("value, currency", [
    ("1.505", "USD"), ("1.5", "JPY"), ("-1.00", "USD"), ("", "USD"), (" 1.00", "USD"), ("1e2", "USD"),
    ("NaN", "USD"), ("Infinity", "USD"), ("abc", "USD"), (None, "USD"), (1.5, "USD"), (150, "USD"),
])
def test_from_paypal_value_refuses(value, currency):
    with pytest.raises(CurrencyError):
        from_paypal_value(value, currency)


def test_payable():
    assert paypal_payable(150, "USD") and paypal_payable(15000, "HUF") and paypal_payable(7, "JPY")
    assert not paypal_payable(15050, "HUF") and not paypal_payable(150, "KWD")


def test_the_widget_uses_the_same_exponents():
    source = (ROOT / "widget" / "format.js").read_text()
    table = re.search(r"const EXPONENTS = \{(.*?)\};", source, re.S).group(1)
    widget = {code: int(n) for code, n in re.findall(r"([A-Z]{3}): (\d)", table)}
    assert widget == EXPONENTS


def test_currencies_endpoint(client):
    data = client.get(f"{API}/currencies").get_json()
    assert data["exponents"] == EXPONENTS and data["default_exponent"] == 2
    assert {"USD", "JPY", "HUF"} <= set(data["paypal"]) and data["paypal_whole_units"] == ["HUF", "JPY", "TWD"]


@pytest.mark.parametrize("minor, currency", [(150, "USD"), (0, "EUR"), (123456, "GBP"), (1500, "JPY"), (7, "CHF")])
def test_paypal_values_are_written_by_the_one_decimal_rule(minor, currency):
    from callme.money.currency import decimal_string

    assert to_paypal_value(minor, currency) == decimal_string(minor, currency)
