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

TABLE_CHECKED_ON = "2026-11-28"

SOURCES: tuple[str, ...] = (
    "Treaty on European Union, Art. 52 (the member states) and Treaty on the Functioning of the European "
    "Union, Art. 355 (outermost regions inside; overseas countries and territories, the Faroe Islands "
    "and the UK sovereign base areas outside; Åland inside)",
    "TFEU Annex II (the overseas countries and territories: Greenland, New Caledonia, French Polynesia, "
    "French Southern and Antarctic Lands, Wallis and Futuna, Saint-Pierre-et-Miquelon, "
    "Saint-Barthélemy, Aruba, Curaçao, Sint Maarten, Bonaire, Saba, Sint Eustatius)",
    "Agreement on the European Economic Area, Art. 126 and Protocol 40 (Iceland, Liechtenstein and "
    "Norway; the Agreement does not apply to Svalbard)",
    "Protocol No 10 on Cyprus to the 2003 Act of Accession, Art. 1 (the acquis is suspended in the areas "
    "of the Republic of Cyprus in which its Government does not exercise effective control)",
    "ISO 3166-1 and ISO 3166-2 as shipped by the pycountry package (codes and subdivisions; an alpha-2 code "
    "and the subdivision code ISO also gives the same place are aliases, see TERRITORY_ALIASES)",
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
        # Protocol No 10 to the 2003 Act of Accession: the acquis is suspended where the Republic of Cyprus has no
        # effective control. ISO's districts follow the Republic's map, not that line, so a district lying wholly
        # (Keryneia) or mostly (Ammochostos) there is outside: fail closed. Lefkosia, Larnaka and the others lie
        # mostly under the Republic's control and stay inside with Cyprus. The UK sovereign base areas (Akrotiri,
        # Dhekelia) have no ISO code of their own. No other member state has a subdivision of this kind: the
        # parts outside the customs or VAT territory (Mount Athos GR-69, Büsingen, Livigno, Heligoland) are
        # inside the EU for data protection.
        "CY-06": "Keryneia District (Protocol No 10 to the 2003 Act of Accession: not under the effective "
        "control of the Republic of Cyprus, acquis suspended)",
        "CY-04": "Ammochostos District (Protocol No 10 to the 2003 Act of Accession: mostly not under the "
        "effective control of the Republic of Cyprus; outside, failing closed)",
    }
)

# Codes ISO gives for one place twice, as a country (alpha-2) and as a subdivision of another country: the same
# place in every rule (status, and which destinations a declared territory declares). First the form used as the
# canonical one. Both sides of every pair have the same status in the table above (a test holds them to it).
TERRITORY_ALIASES: tuple[tuple[str, str], ...] = (
    ("GP", "FR-971"),
    ("MQ", "FR-972"),
    ("GF", "FR-973"),
    ("RE", "FR-974"),
    ("YT", "FR-976"),
    ("MF", "FR-MF"),
    ("AX", "FI-01"),
    ("PF", "FR-PF"),
    ("NC", "FR-NC"),
    ("WF", "FR-WF"),
    ("TF", "FR-TF"),
    ("PM", "FR-PM"),
    ("BL", "FR-BL"),
    ("AW", "NL-AW"),
    ("CW", "NL-CW"),
    ("SX", "NL-SX"),
    ("BQ-BO", "NL-BQ1"),
    ("BQ-SA", "NL-BQ2"),
    ("BQ-SE", "NL-BQ3"),
    ("AS", "US-AS"),
    ("GU", "US-GU"),
    ("MP", "US-MP"),
    ("PR", "US-PR"),
    ("UM", "US-UM"),
    ("VI", "US-VI"),
    ("HK", "CN-HK"),
    ("MO", "CN-MO"),
    ("TW", "CN-TW"),
)
# Places ISO codes as a subdivision of one country and as a part of an alpha-2 code shared with another place:
# Svalbard and Jan Mayen are both inside SJ, so declaring SJ declares them (their statuses differ, SJ is outside).
CONTAINED_IN: Mapping[str, str] = MappingProxyType({"NO-21": "SJ", "NO-22": "SJ"})


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


@cache
def _canonical_by_code() -> Mapping[str, str]:
    return MappingProxyType({alias: canonical for canonical, alias in TERRITORY_ALIASES})


@cache
def _aliases_by_code() -> Mapping[str, tuple[str, ...]]:
    aliases: dict[str, list[str]] = {}
    for canonical, alias in TERRITORY_ALIASES:
        aliases.setdefault(canonical, []).append(alias)
        aliases.setdefault(alias, []).append(canonical)
    return MappingProxyType({code: tuple(others) for code, others in aliases.items()})


def canonical_territory(code: str) -> str:
    """The one spelling the rules compare for a place ISO codes twice (``FR-974`` → ``RE``); else the code."""
    return _canonical_by_code().get(code, code)


@lru_cache(maxsize=8192)
def territory_enclosures(code: str) -> frozenset[str]:
    """Every place (canonical spelling) that contains ``code`` or is it: the code and its aliases, their parent
    subdivisions and countries, and the alpha-2 codes they are part of. A destination is declared by a recipient
    that declares any of them: declaring ``FR`` declares ``RE`` (alias of ``FR-974``), declaring ``RE`` declares
    ``FR-974``."""
    if not isinstance(code, str):
        return frozenset()
    seen: set[str] = set()
    pending = [code]
    while pending:
        place = pending.pop()
        if place in seen:
            continue
        seen.add(place)
        pending.extend(_aliases_by_code().get(place, ()))
        pending.extend(territory_ancestors(place))
        container = CONTAINED_IN.get(place)
        if container is not None:
            pending.append(container)
    return frozenset(canonical_territory(place) for place in seen)


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
