"""Territory codes (DESIGN §5): which ISO 3166 codes exist, and which lie inside the EU/EEA.

The policy is EEA-only, so the guard asks one question of every territory it meets: inside the EEA,
outside it, or unknown (fail closed). The answer comes from the table below, which is data: the member
states, the parts that ISO 3166 lists apart but that belong to the EEA, and the named parts that do not.
Any valid ISO code not in the table takes its country's answer; anything that is not a canonical ISO
code is unknown.
"""

from collections.abc import Mapping
from enum import StrEnum
from functools import cache, lru_cache
from types import MappingProxyType

import pycountry

TABLE_CHECKED_ON = "2026-11-25"

SOURCES: tuple[str, ...] = (
    "Treaty on European Union, Art. 52 (the member states) and Treaty on the Functioning of the European "
    "Union, Art. 355 (outermost regions inside; overseas countries and territories, the Faroe Islands "
    "and the UK sovereign base areas outside; Åland inside)",
    "TFEU Annex II (the overseas countries and territories: Greenland, New Caledonia, French Polynesia, "
    "French Southern and Antarctic Lands, Wallis and Futuna, Saint-Pierre-et-Miquelon, "
    "Saint-Barthélemy, Aruba, Curaçao, Sint Maarten, Bonaire, Saba, Sint Eustatius)",
    "Agreement on the European Economic Area, Art. 126 and Protocol 40 (Iceland, Liechtenstein and "
    "Norway; the Agreement does not apply to Svalbard)",
    "ISO 3166-1 and ISO 3166-2 as shipped by the pycountry package (codes and subdivisions)",
)

# The 27 EU member states (Greece is GR in ISO 3166, never EL) and the EEA EFTA states.
EU_MEMBER_STATES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
EEA_EFTA_STATES: frozenset[str] = frozenset({"IS", "LI", "NO"})
EEA_MEMBER_STATES: frozenset[str] = EU_MEMBER_STATES | EEA_EFTA_STATES

# Parts of member states that ISO lists apart (own alpha-2 code or a subdivision) and that are inside.
# FR-975 is not here: it is no longer an ISO 3166-2 code (it was Saint-Pierre-et-Miquelon, now FR-PM,
# an overseas territory outside), so it resolves to unknown.
INSIDE_EEA_SPECIAL_PARTS: Mapping[str, str] = MappingProxyType(
    {
        "GP": "Guadeloupe (outermost region)",
        "GF": "French Guiana (outermost region)",
        "MQ": "Martinique (outermost region)",
        "RE": "Réunion (outermost region)",
        "YT": "Mayotte (outermost region)",
        "MF": "Saint Martin, French part (outermost region)",
        "AX": "Åland Islands (Protocol 2 to the 1994 Act of Accession)",
        "FI-01": "Åland Islands",
        "ES-CN": "Canary Islands (outermost region)",
        "ES-CE": "Ceuta",
        "ES-ML": "Melilla",
        "PT-20": "Azores (outermost region)",
        "PT-30": "Madeira (outermost region)",
        "NO-22": "Jan Mayen",
        "FR-971": "Guadeloupe",
        "FR-972": "Martinique",
        "FR-973": "French Guiana",
        "FR-974": "Réunion",
        "FR-976": "Mayotte",
        "FR-MF": "Saint Martin",
    }
)

# Named territories outside: neighbours people mistake for EEA members, Crown dependencies, the
# Danish and Norwegian parts outside, and the overseas countries and territories in both their
# alpha-2 and their subdivision forms. Anything else not in the EEA list is outside too.
OUTSIDE_EEA_NAMED_PARTS: Mapping[str, str] = MappingProxyType(
    {
        "CH": "Switzerland (EFTA, not EEA)",
        "GB": "United Kingdom",
        "GI": "Gibraltar",
        "JE": "Jersey",
        "GG": "Guernsey",
        "IM": "Isle of Man",
        "FO": "Faroe Islands",
        "GL": "Greenland (overseas country and territory)",
        "SJ": "Svalbard and Jan Mayen (one code; Svalbard is outside)",
        "BV": "Bouvet Island",
        "NO-21": "Svalbard",
        "PF": "French Polynesia (overseas country and territory)",
        "NC": "New Caledonia (overseas country and territory)",
        "WF": "Wallis and Futuna (overseas country and territory)",
        "TF": "French Southern Territories (overseas country and territory)",
        "PM": "Saint Pierre and Miquelon (overseas country and territory)",
        "BL": "Saint Barthélemy (overseas country and territory)",
        "AW": "Aruba (overseas country and territory)",
        "CW": "Curaçao (overseas country and territory)",
        "SX": "Sint Maarten (overseas country and territory)",
        "BQ": "Bonaire, Sint Eustatius and Saba (overseas countries and territories)",
        "FR-PF": "French Polynesia",
        "FR-NC": "New Caledonia",
        "FR-WF": "Wallis and Futuna",
        "FR-TF": "French Southern Territories",
        "FR-PM": "Saint Pierre and Miquelon",
        "FR-BL": "Saint Barthélemy",
        "FR-CP": "Clipperton",
        "NL-AW": "Aruba",
        "NL-CW": "Curaçao",
        "NL-SX": "Sint Maarten",
        "NL-BQ1": "Bonaire",
        "NL-BQ2": "Saba",
        "NL-BQ3": "Sint Eustatius",
    }
)


class TerritoryStatus(StrEnum):
    INSIDE_EEA = "inside_eea"
    OUTSIDE_EEA = "outside_eea"
    UNKNOWN = "unknown"


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


def _named_status(code: str) -> TerritoryStatus | None:
    if code in INSIDE_EEA_SPECIAL_PARTS:
        return TerritoryStatus.INSIDE_EEA
    if code in OUTSIDE_EEA_NAMED_PARTS:
        return TerritoryStatus.OUTSIDE_EEA
    return None


def _country_status(alpha_2: str) -> TerritoryStatus:
    named = _named_status(alpha_2)
    if named is not None:
        return named
    return TerritoryStatus.INSIDE_EEA if alpha_2 in EEA_MEMBER_STATES else TerritoryStatus.OUTSIDE_EEA


@cache
def _ancestors_by_subdivision() -> Mapping[str, tuple[str, ...]]:
    parents = {sub.code: sub.parent_code for sub in pycountry.subdivisions}
    ancestors: dict[str, tuple[str, ...]] = {}
    for sub in pycountry.subdivisions:
        chain: list[str] = []
        parent = parents.get(sub.code)
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = parents.get(parent)
        chain.append(sub.country_code)
        ancestors[sub.code] = tuple(chain)
    return MappingProxyType(ancestors)


@cache
def _status_by_code() -> Mapping[str, TerritoryStatus]:
    """Every ISO code pycountry knows, resolved once: the hot path is then one dict lookup.

    A subdivision not named in the table takes the answer of its nearest named parent subdivision, if
    any, else its country's answer (ISO has no child of a named part today whose answer would differ;
    the parent walk keeps that true if one is added, e.g. a district of Svalbard).
    """
    statuses: dict[str, TerritoryStatus] = {}
    for country in pycountry.countries:
        statuses[country.alpha_2] = _country_status(country.alpha_2)
    for code, ancestors in _ancestors_by_subdivision().items():
        *parent_subdivisions, country_code = ancestors
        named = (_named_status(c) for c in (code, *parent_subdivisions))
        statuses[code] = next((st for st in named if st is not None), None) or _country_status(country_code)
    return MappingProxyType(statuses)


def classify_territory(code: str) -> TerritoryStatus:
    """Inside the EEA, outside it, or unknown for anything that is not a canonical ISO 3166 code."""
    if not isinstance(code, str):
        return TerritoryStatus.UNKNOWN
    return _status_by_code().get(code, TerritoryStatus.UNKNOWN)


def is_inside_eea(code: str) -> bool:
    """Only a known code inside the EEA is inside; unknown codes fail closed."""
    return classify_territory(code) is TerritoryStatus.INSIDE_EEA


def territory_ancestors(code: str) -> tuple[str, ...]:
    """The parent subdivisions of an ISO 3166-2 code, nearest first, then its country; () otherwise."""
    if not isinstance(code, str):
        return ()
    return _ancestors_by_subdivision().get(code, ())


@lru_cache(maxsize=4096)
def territory_name(code: str) -> str | None:
    """The ISO short name of a known code, for messages; None for anything unknown."""
    if classify_territory(code) is TerritoryStatus.UNKNOWN:
        return None
    if "-" in code:
        sub = pycountry.subdivisions.get(code=code)
        return None if sub is None else str(sub.name)
    country = pycountry.countries.get(alpha_2=code)
    return None if country is None else str(country.name)
