"""Currencies: the one table of minor-unit exponents, and PayPal's decimal strings.

Amounts are integers of minor units everywhere in callme. The exponents are ISO 4217's
(the widget's ``format.js`` holds the same table; a test keeps them equal). PayPal takes
decimal strings and, for a few currencies, whole units only: those amounts must be whole
units of the currency to be payable at all. No float ever touches an amount.
"""
from decimal import Decimal

# ISO 4217 minor-unit exponents that are not 2.
EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}

# The currencies PayPal's REST API accepts, and those it accepts in whole units only.
PAYPAL_CURRENCIES = frozenset(
    "AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD NOK PHP PLN GBP RUB SGD SEK CHF THB USD".split())
PAYPAL_WHOLE_UNITS = frozenset({"HUF", "JPY", "TWD"})


class CurrencyError(ValueError):
    pass


def exponent(currency):
    """Digits after the decimal point of a currency's minor unit: USD 2, JPY 0, KWD 3."""
    return EXPONENTS.get(currency, 2)


def paypal_payable(minor, currency):
    """True when PayPal can take this amount in this currency."""
    if currency not in PAYPAL_CURRENCIES:
        return False
    return currency not in PAYPAL_WHOLE_UNITS or minor % 10 ** exponent(currency) == 0


def decimal_string(minor, currency):
    """Minor units as a plain decimal string with the currency's digits: (-150, "USD") -> "-1.50",
    (150, "JPY") -> "150", (1500, "KWD") -> "1.500". The one rule for writing an amount as a number."""
    if type(minor) is not int:
        raise TypeError(f"an amount is an integer of minor units, not {minor!r}")
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    units, rest = divmod(abs(minor), 10 ** digits)
    return f"{sign}{units}.{rest:0{digits}d}" if digits else f"{sign}{units}"


def to_paypal_value(minor, currency):
    """Minor units as PayPal's decimal string: (150, "USD") -> "1.50", (150, "JPY") -> "150"."""
    if type(minor) is not int:
        raise CurrencyError(f"amount must be an integer of minor units, got {minor!r}")
    if minor < 0:
        raise CurrencyError("PayPal amounts are never negative")
    if currency not in PAYPAL_CURRENCIES:
        raise CurrencyError(f"PayPal does not take {currency}")
    if currency in PAYPAL_WHOLE_UNITS:  # written without decimals: PayPal refuses "150.00" HUF
        units, rest = divmod(minor, 10 ** exponent(currency))
        if rest:
            raise CurrencyError(f"PayPal takes whole {currency} only, not {minor} minor units")
        return str(units)
    return decimal_string(minor, currency)


def from_paypal_value(value, currency):
    """PayPal's decimal string as minor units: ("1.50", "USD") -> 150; refuses what is not exact."""
    if not isinstance(value, str) or not value or value.strip() != value:
        raise CurrencyError(f"not a PayPal amount: {value!r}")
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise CurrencyError(f"not a PayPal amount: {value!r}") from None
    if not number.is_finite() or number < 0 or "e" in value.lower():
        raise CurrencyError(f"not a PayPal amount: {value!r}")
    minor = number.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise CurrencyError(f"{value} {currency} is not a whole number of minor units")
    return int(minor)
