"""Checksums and shape checks the redaction rules confirm candidates with (Luhn, mod-97, SSN areas).

Standard library only.
"""

from __future__ import annotations

_LUHN_DOUBLE = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    double = _LUHN_DOUBLE
    total = sum(map(int, digits[-1::-2])) + sum([double[char] for char in digits[-2::-2]])
    return total % 10 == 0


def _card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of the major networks (keeps epoch times and ids out)."""
    n = len(digits)
    two = int(digits[:2])
    three = int(digits[:3])
    four = int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or 644 <= three <= 649 or two == 65:
        return 16 <= n <= 19
    if 300 <= three <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19
    if 3528 <= four <= 3589 or two == 62:
        return 16 <= n <= 19
    if two in (50, 56, 57, 58, 67):
        return 12 <= n <= 19
    return False


_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def ssn_ok(value: str) -> bool:
    area, group, serial = value.split("-")
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"
