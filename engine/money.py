"""Money: Decimal only, ISO 4217 minor units, and one deliberate rounding per line."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor units. Anything not listed has 2, which is what the standard gives most.
MINOR_UNITS: dict[str, int] = {
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
}
# Currencies we accept; a typo such as "USB" must be an error, not a 2-decimal currency.
KNOWN_CURRENCIES: frozenset[str] = frozenset(
    [
        "AED",
        "AUD",
        "BGN",
        "BHD",
        "BRL",
        "CAD",
        "CHF",
        "CLP",
        "CNY",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "ISK",
        "JOD",
        "JPY",
        "KES",
        "KRW",
        "KWD",
        "LYD",
        "MXN",
        "MYR",
        "NGN",
        "NOK",
        "NZD",
        "OMR",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TND",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "UGX",
        "VND",
        "XAF",
        "XOF",
        "ZAR",
        "BIF",
        "DJF",
        "GNF",
        "KMF",
        "PYG",
        "RWF",
        "UYI",
        "VUV",
        "XPF",
    ]
)

ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
ZERO = Decimal(0)
HUNDRED = Decimal(100)

_EXPONENTS = {n: Decimal(1).scaleb(-n) for n in range(0, 5)}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency: 0.01 for USD, 1 for JPY, 0.001 for KWD."""
    return _EXPONENTS[minor_units(currency)]


class Rounder:
    """Rounds exact amounts to a currency's minor unit with the catalog's rounding mode.

    Built once per catalog so the hot pricing path does one `quantize` per line."""

    __slots__ = ("_rounding", "currency", "mode", "mode_constant", "quantum")

    def __init__(self, currency: str, mode: str = "half_up") -> None:
        if mode not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {sorted(ROUNDING_MODES)}, not {mode!r}")
        self.currency = currency
        self.mode = mode
        self.quantum = quantum(currency)
        self._rounding = ROUNDING_MODES[mode]
        self.mode_constant = self._rounding  # for hot loops that call quantize directly

    def __call__(self, amount: Decimal) -> Decimal:
        return amount.quantize(self.quantum, rounding=self._rounding)

    def fmt(self, amount: Decimal) -> str:
        """A rounded amount as the decimal string the formats use ("10.00", "1500", "0.125")."""
        return str(amount.quantize(self.quantum, rounding=self._rounding))


# Every number the engine takes from outside (HTTP, YAML, events, statements): below 10^12
# (a trillion units or currency units) with at most 12 decimal places. Anything larger is a
# mistake or an attack (1E+999999999 costs nothing to write and gigabytes to print).
MAX_INTEGER_DIGITS = 12
MAX_FRACTION_DIGITS = 12
_MAX_TEXT = 64  # characters of a number's text: refused before it is parsed at all


def check_range(value: Decimal, what: str = "number") -> Decimal:
    """`value` if it is finite, below 10^12 in size and has at most 12 decimal places."""
    if not value.is_finite():
        raise ValueError(f"{what}: {value} is not a finite number")
    if value and value.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"{what}: {value:.3E} is out of range: at most {MAX_INTEGER_DIGITS} digits before the point")
    exponent = value.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -MAX_FRACTION_DIGITS
        and value != value.quantize(Decimal(1).scaleb(-MAX_FRACTION_DIGITS))
    ):
        raise ValueError(f"{what}: {value} has more than {MAX_FRACTION_DIGITS} decimal places")
    return value


def to_decimal(value: object, what: str = "amount") -> Decimal:
    """Parse a decimal from a string or int, within `check_range`. Floats are refused: they
    are not exact."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a decimal, got a boolean")
    if isinstance(value, float):
        raise ValueError(f'{what}: {value!r} is a float; write amounts as decimal strings, e.g. "49.00"')
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if abs(value) >= 10**_MAX_TEXT:
            raise ValueError(f"{what}: a number of more than {_MAX_TEXT} characters is out of range")
        result = Decimal(value)
    elif isinstance(value, str):
        result = _parse_decimal(value, what)
    else:
        raise ValueError(f"{what}: expected a decimal, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return check_range(result, what)


def _parse_decimal(value: str, what: str) -> Decimal:
    """A decimal string (trimmed) of at most _MAX_TEXT characters."""
    text = value.strip()
    if len(text) > _MAX_TEXT:
        raise ValueError(f"{what}: a number of more than {_MAX_TEXT} characters is out of range")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a decimal number") from None


def number_to_decimal(value: object, what: str = "number") -> Decimal:
    """For rates and percentages, where YAML numbers are natural (`rate: 2.9`): a float is
    taken by its shortest repr, which is exactly the digits the author wrote."""
    if isinstance(value, float):
        return to_decimal(repr(value), what)
    return to_decimal(value, what)
