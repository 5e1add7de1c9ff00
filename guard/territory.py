"""Territory codes (DESIGN §5): which ISO 3166 codes exist, and which lie inside the EU/EEA."""

import pycountry


def is_iso_territory(code: str) -> bool:
    """True for a canonical (upper-case) ISO 3166-1 alpha-2 or ISO 3166-2 code that pycountry knows.

    pycountry looks codes up case-insensitively; the registry accepts only the canonical spelling so that
    one territory has one spelling in stored data and in the decision log.
    """
    if not isinstance(code, str) or code != code.upper() or not code.isascii():
        return False
    if "-" in code:
        return pycountry.subdivisions.get(code=code) is not None
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None
