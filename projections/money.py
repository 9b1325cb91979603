"""Exact money: Fractions of minor units while computing, half-even rounding on output."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

# Stripe's zero-decimal currencies; everything else we see has two decimals, except the
# three-decimal ones. https://docs.stripe.com/currencies#zero-decimal
_ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def minor_unit_exponent(currency: str) -> int:
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def round_minor(amount: Fraction) -> int:
    """Half-even to a whole minor unit."""
    return round(amount)  # Fraction.__round__ rounds half to even


def to_text(amount: Fraction) -> str:
    """An exact, lossless text form for storage ("9125/100")."""
    return f"{amount.numerator}/{amount.denominator}"


def from_text(text: str) -> Fraction:
    return Fraction(text)


def major_units(amount_minor: Fraction, currency: str) -> str:
    """A decimal string in major units, half-even to the currency's minor unit: "403.25"."""
    exponent = minor_unit_exponent(currency)
    with localcontext() as context:
        context.prec = 60
        value = Decimal(amount_minor.numerator) / Decimal(amount_minor.denominator)
        value = value.scaleb(-exponent).quantize(
            Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN
        )
    return f"{value:f}"
