"""The guard's vocabulary (DESIGN §2, §4.2): the rules' version, the taxonomy it
knows, special categories, agreement kinds, reason codes and objection scopes. Pure data and lookups."""

from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from importlib.metadata import version
from types import MappingProxyType

from fideslang import DEFAULT_TAXONOMY

from guard.territory import (
    TABLE_CHECKED_ON,
)

# --- Reference data -------------------------------------------------------------------------------------

# The rules' own version: raised whenever a rule here changes an answer, so that the decision log tells decisions
# before and after a rule change apart. The ruleset a decision carries is the policy's name, this, the territory
# table's date and the taxonomy's version, then the registry revision the snapshot was built from.
POLICY_VERSION = "rules-2026-12-06-restrictions-international-organisations"
FIDESLANG_VERSION = version("fideslang")
RULES_VERSION = f"{POLICY_VERSION}.t{TABLE_CHECKED_ON}.fides{FIDESLANG_VERSION}"


def ruleset_name(policy: str, registry_revision: int | str) -> str:
    """``eea-only@rules-2026-11-28.t2026-11-28.fides3.1.4+r123``: made once per snapshot, never per check."""
    return f"{policy}@{RULES_VERSION}+r{registry_revision}"


ART28_CLAUSES: tuple[str, ...] = (
    "instructions",
    "confidentiality",
    "security",
    "sub_processing",
    "data_subject_rights",
    "compliance_assistance",
    "deletion_or_return",
    "audits",
)
ART28_CLAUSE_LETTERS: Mapping[str, str] = MappingProxyType(
    {clause: f"({letter})" for clause, letter in zip(ART28_CLAUSES, "abcdefgh", strict=True)}
)

REQUIRED_AGREEMENT_KIND: Mapping[str, str] = MappingProxyType(
    {"processor": "dpa", "sub_processor": "dpa", "independent_controller": "data_sharing"}
)

AGREEMENT_KIND_NAMES: Mapping[str, str] = MappingProxyType(
    {"dpa": "data processing agreement (dpa)", "data_sharing": "data-sharing agreement"}
)

LOCATION_KIND_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        "establishment": "is established in",
        "storage": "stores data in",
        "processing": "processes data in",
        "support_access": "has remote support access to the data from",
        "backup": "keeps backups in",
    }
)

KNOWN_DATA_CATEGORIES: frozenset[str] = frozenset(str(c.fides_key) for c in DEFAULT_TAXONOMY.data_category)
KNOWN_PURPOSES: frozenset[str] = frozenset(str(u.fides_key) for u in DEFAULT_TAXONOMY.data_use)
KNOWN_DATA_SUBJECTS: frozenset[str] = frozenset(str(s.fides_key) for s in DEFAULT_TAXONOMY.data_subject)

# GDPR Art. 9 and Art. 10 data by fideslang key: the policy allows sharing of none of it.
SPECIAL_CATEGORY_ROOTS: tuple[str, ...] = (
    "user.biometric",
    "user.authorization.biometric",
    "user.health_and_medical",  # includes user.health_and_medical.genetic
    "user.demographic.race_ethnicity",
    "user.demographic.political_opinion",
    "user.demographic.religious_belief",
    "user.demographic.sexual_orientation",
    "user.criminal_history",
)

# The decision memo (`Snapshot.decision`) holds at most this many decisions, of requests of at most this many
# categories (a request may name 100 categories of 200 characters: memoizing those could hold hundreds of MB).
DECISION_MEMO_SIZE = 2048
DECISION_MEMO_MAX_CATEGORIES = 20

TERRITORY_HINTS: Mapping[str, str] = MappingProxyType({"UK": "GB", "EL": "GR"})


def covers(entry: str, key: str) -> bool:
    """An entry covers itself and all under it: ``user.contact`` covers ``user.contact.email``."""
    return key == entry or key.startswith(entry + ".")


@lru_cache(maxsize=8192)
def entries_covering(key: str) -> tuple[str, ...]:
    """Every entry that covers ``key``: itself and each of its dotted prefixes (``user.contact.email``,
    ``user.contact``, ``user``), so that coverage is a set lookup rather than a scan of prefixes."""
    return (key, *(key[:i] for i, character in enumerate(key) if character == "."))


@lru_cache(maxsize=4096)
def special_category_roots_in(category: str) -> tuple[str, ...]:
    """The special-category roots a requested category falls under, or includes when it is an ancestor."""
    return tuple(root for root in SPECIAL_CATEGORY_ROOTS if covers(root, category) or root.startswith(category + "."))


def is_special_category(category: str) -> bool:
    return bool(special_category_roots_in(category))


class ReasonCode(StrEnum):
    RECIPIENT_UNKNOWN = "RECIPIENT_UNKNOWN"
    RECIPIENT_INACTIVE = "RECIPIENT_INACTIVE"
    RECIPIENT_IS_AUTHORITY = "RECIPIENT_IS_AUTHORITY"
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_INCOMPLETE = "AGREEMENT_INCOMPLETE"
    CATEGORY_NOT_COVERED = "CATEGORY_NOT_COVERED"
    PURPOSE_NOT_COVERED = "PURPOSE_NOT_COVERED"
    SUBJECT_NOT_COVERED = "SUBJECT_NOT_COVERED"
    CATEGORY_UNKNOWN = "CATEGORY_UNKNOWN"
    PURPOSE_UNKNOWN = "PURPOSE_UNKNOWN"
    SPECIAL_CATEGORY = "SPECIAL_CATEGORY"
    LOCATION_OUTSIDE_EEA = "LOCATION_OUTSIDE_EEA"
    SUBPROCESSOR_OUTSIDE_EEA = "SUBPROCESSOR_OUTSIDE_EEA"
    SUBPROCESSOR_UNAPPROVED = "SUBPROCESSOR_UNAPPROVED"
    DESTINATION_OUTSIDE_EEA = "DESTINATION_OUTSIDE_EEA"
    DESTINATION_UNDECLARED = "DESTINATION_UNDECLARED"
    TERRITORY_UNKNOWN = "TERRITORY_UNKNOWN"
    AGREEMENT_PERMITS_TRANSFER = "AGREEMENT_PERMITS_TRANSFER"
    SUBPROCESSOR_OBJECTED = "SUBPROCESSOR_OBJECTED"
    PURPOSE_NOT_PUBLISHED = "PURPOSE_NOT_PUBLISHED"
    SUBJECT_OBJECTED = "SUBJECT_OBJECTED"
    SUBJECT_REF_MISSING = "SUBJECT_REF_MISSING"
    SUBJECT_RESTRICTED = "SUBJECT_RESTRICTED"
    RECIPIENT_INTERNATIONAL_ORGANISATION = "RECIPIENT_INTERNATIONAL_ORGANISATION"
    # Warnings: never block.
    AGREEMENT_EXPIRING = "AGREEMENT_EXPIRING"
