"""Processing activities (DESIGN §2, the privacy policy as code): the Art. 30(1) record per activity, with its
recipients and transfers derived from the registry and the guard's rules (never typed), and the UI's edits of
one activity.

An activity's recipients are the parties with an agreement in force whose purposes, data categories and data
subjects overlap the activity's (either one equal to or under the other), and the sub-processors their chains
reach. Each carries the guard's standing verdict on it (refused when a blocking finding stands), whether an
agreement of it permits transfers outside the EEA, and the decision log's evidence for the activity's purposes
in the period. A place outside the EEA is listed as a transfer refused by policy, with no safeguard: under this
policy no safeguard opens a transfer (DESIGN §5)."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from fideslang.default_taxonomy import DEFAULT_TAXONOMY
from sqlalchemy.ext.asyncio import AsyncSession

from guard.places import walk_chain
from guard.policy import Snapshot, evaluate_party
from guard.territory import TerritoryStatus, territory_name
from guard.views import PartyView
from guard.vocabulary import ReasonCode, covers
from kernel.errors import FieldError, NotFoundError, RegistryValidationError, pydantic_field_errors
from kernel.i18n import N_, country_name, current, gettext
from registry.models import ControllerProfile
from registry.schemas import ProcessingActivityIn

LEGAL_BASIS_LABELS = {
    "consent": N_("consent (Art. 6(1)(a))"),
    "contract": N_("performance of a contract (Art. 6(1)(b))"),
    "legal_obligation": N_("legal obligation (Art. 6(1)(c))"),
    "vital_interests": N_("vital interests (Art. 6(1)(d))"),
    "public_task": N_("public task (Art. 6(1)(e))"),
    "legitimate_interests": N_("legitimate interests (Art. 6(1)(f))"),
}
ROLE_LABELS = {
    "processor": N_("processor"),
    "sub_processor": N_("sub-processor"),
    "independent_controller": N_("independent controller"),
    "authority": N_("authority"),
}
CATEGORY_LABELS = {
    "transport": N_("transport and delivery"),
    "marketing": N_("marketing"),
    "it_services": N_("IT services"),
    "web_platform_payments": N_("web platform and payments"),
    "manufacturer": N_("manufacturer"),
    "supplier": N_("supplier"),
    "reseller": N_("reseller"),
    "authority": N_("authority"),
    "other": N_("other"),
}
KIND_LABELS = {
    "establishment": N_("establishment"),
    "storage": N_("storage"),
    "processing": N_("processing"),
    "support_access": N_("support access"),
    "backup": N_("backup"),
    "agreement": N_("agreement"),
    "unknown": N_("unknown"),
}
REFUSED_BY_POLICY = N_("refused by policy: no personal data leaves the EU/EEA")
PERMITTED_BY_AGREEMENT = N_("an agreement permits transfers outside the EU/EEA")
# Findings about the party's agreements and the controller's published purposes do not stop a share for the
# activity's own (published) purposes; every other blocking finding does.
_NOT_ABOUT_THE_ACTIVITY = frozenset({ReasonCode.PURPOSE_NOT_PUBLISHED})
ROLE_ORDER = {"processor": 0, "sub_processor": 1, "independent_controller": 2, "authority": 3}

_TAXONOMY_NAMES: dict[str, str] = {
    item.fides_key: item.name or item.fides_key
    for items in (DEFAULT_TAXONOMY.data_category, DEFAULT_TAXONOMY.data_use, DEFAULT_TAXONOMY.data_subject)
    for item in items
}


def translate(message: str) -> str:
    return gettext(message) if message else ""


def text_in(texts: Mapping[str, str] | None, language: str) -> str:
    """A {sv, en} text in `language` (else the other one)."""
    texts = texts or {}
    return texts.get(language) or next((texts[o] for o in ("sv", "en") if texts.get(o)), "")


def term_label(vocabulary: Mapping[str, Any] | None, key: str, language: str) -> str:
    """A taxonomy key in the reader's words: the controller's label in `language`, else the taxonomy's name."""
    entry = (vocabulary or {}).get(key) or {}
    return entry.get(language) or _TAXONOMY_NAMES.get(key) or key


def overlapping(entries: Iterable[str], others: Iterable[str]) -> list[str]:
    """The entries equal to, under or above one of `others` (taxonomy keys are hierarchical)."""
    others = tuple(others)
    return [e for e in entries if any(covers(e, o) or covers(o, e) for o in others)]


def place_name(code: str) -> str:
    name = territory_name(code)
    return country_name(name) if name else ""


def _verdict(party: PartyView, snapshot: Snapshot, as_of: date, memo: dict[str, list[str]]) -> list[str]:
    """The codes of the blocking findings that stand against every share to `party` for the activity (worked out
    once per party for all the activities: `memo`)."""
    if party.key in memo:
        return memo[party.key]
    codes = [] if party.active else [str(ReasonCode.RECIPIENT_INACTIVE)]
    for reason in evaluate_party(party, snapshot, as_of):
        if reason.code not in _NOT_ABOUT_THE_ACTIVITY and str(reason.code) not in codes:
            codes.append(str(reason.code))
    memo[party.key] = codes
    return codes


def _evidence(purposes: Sequence[str], counted: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """The shares to one recipient the log counted for the activity's purposes; `counted`: that recipient's (purpose,
    allowed, denied)."""
    allowed = denied = 0
    for purpose, yes, no in counted:
        if any(covers(p, purpose) for p in purposes):
            allowed += yes
            denied += no
    return {"shares_allowed": allowed, "shares_denied": denied}


def with_enforcement(
    entries: Sequence[Mapping[str, Any]], by_purpose: Mapping[tuple[str, str], tuple[int, int]]
) -> list[dict[str, Any]]:
    """`entries` (registry_activity_entries: the registry's part, which may be shared) with each recipient's
    shares in the period from `by_purpose`, the log's (allowed, denied) per (recipient, purpose): new dicts, the
    entries given are left as they are."""
    per_recipient: dict[str, list[tuple[str, int, int]]] = {}
    for (recipient, purpose), (yes, no) in by_purpose.items():
        per_recipient.setdefault(recipient, []).append((purpose, yes, no))
    return [
        {
            **entry,
            "recipients": [
                {**r, "enforcement": _evidence(entry["purposes"], per_recipient.get(r["key"], ()))}
                for r in entry["recipients"]
            ],
        }
        for entry in entries
    ]


def _recipient(
    party: PartyView,
    snapshot: Snapshot,
    activity: Mapping[str, Any],
    as_of: date,
    via: tuple[str, ...] | None,
    memo: dict[str, list[str]],
) -> dict[str, Any]:
    in_force = [a for a in snapshot.agreements_by_party.get(party.key, ()) if a.in_force_on(as_of)]
    covering = [a for a in in_force if overlapping(a.purposes, activity["purposes"])]
    refusals = _verdict(party, snapshot, as_of, memo)
    permitting = [a.key for a in in_force if a.transfers_outside_eea_permitted]
    return {
        "key": party.key,
        "name": party.name,
        "role": party.role,
        "role_text": translate(ROLE_LABELS.get(party.role, party.role)),
        "category": party.category,
        "category_text": translate(CATEGORY_LABELS.get(party.category, party.category)),
        "via": list(via) if via else None,
        "agreements": [a.key for a in covering],
        "purposes": sorted({p for a in covering for p in overlapping(activity["purposes"], a.purposes)}),
        "data_categories": sorted(
            {c for a in covering for c in overlapping(a.data_categories, activity["data_categories"])}
        ),
        "guard": "refused" if refusals else "allowed",
        "guard_text": gettext("refused by the guard") if refusals else gettext("allowed by the guard"),
        "guard_reasons": refusals,
        "transfers_outside_eea_permitted": bool(permitting),
        "permitting_agreements": permitting,
    }


def _is_recipient(party: PartyView, snapshot: Snapshot, activity: Mapping[str, Any], as_of: date) -> bool:
    return any(
        a.in_force_on(as_of)
        and overlapping(a.purposes, activity["purposes"])
        and overlapping(a.data_categories, activity["data_categories"])
        and overlapping(a.data_subjects, activity["data_subjects"])
        for a in snapshot.agreements_by_party.get(party.key, ())
    )


def _transfers(
    party: PartyView, snapshot: Snapshot, recipient: dict[str, Any], places: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every place of `party` and its chain outside the EEA (or unknown), and an agreement permitting transfers,
    each as a transfer the guard refuses."""
    out = []
    for place in places:
        if place["status"] == str(TerritoryStatus.INSIDE_EEA):
            continue
        out.append(
            {
                "recipient": party.key,
                "party": place["party"],
                "territory": place["territory"] or None,
                "country": place_name(place["territory"]) if place["territory"] else "",
                "kind": place["kind"],
                "kind_text": translate(KIND_LABELS.get(place["kind"], place["kind"])),
                "chain": place["chain"],
                "status": place["status"],
                "decision": "refused_by_policy",
                "decision_text": gettext(REFUSED_BY_POLICY),
                "safeguards": None,
                "transfers_outside_eea_permitted": recipient["transfers_outside_eea_permitted"],
            }
        )
    if recipient["transfers_outside_eea_permitted"] and not out:
        out.append(
            {
                "recipient": party.key,
                "party": party.key,
                "territory": None,
                "country": "",
                "kind": "agreement",
                "kind_text": gettext(PERMITTED_BY_AGREEMENT),
                "chain": None,
                "status": "permitted_by_agreement",
                "decision": "refused_by_policy",
                "decision_text": gettext(REFUSED_BY_POLICY),
                "safeguards": None,
                "transfers_outside_eea_permitted": True,
            }
        )
    return out


def activity_entries(
    controller: Mapping[str, Any] | None,
    snapshot: Snapshot,
    as_of: date,
    by_purpose: Mapping[tuple[str, str], tuple[int, int]],
    territories_of: Any,
) -> list[dict[str, Any]]:
    """The Art. 30(1)(b)-(g) entries, one per processing activity, in the current language (kernel.i18n);
    `by_purpose` the decision log's (allowed, denied) counts per (recipient, purpose) in the period,
    `territories_of(party)` a party's places and its chain's (registry.services.records.territories)."""
    return with_enforcement(registry_activity_entries(controller, snapshot, as_of, territories_of), by_purpose)


def registry_activity_entries(
    controller: Mapping[str, Any] | None, snapshot: Snapshot, as_of: date, territories_of: Any
) -> list[dict[str, Any]]:
    """activity_entries without the decision log's counts: what the registry, the day and the language decide
    (seconds at 10,000 parties: the Art. 30 page keeps it per snapshot, registry/services/records.py)."""
    language = current()
    vocabulary = (controller or {}).get("vocabulary")
    verdicts: dict[str, list[str]] = {}
    entries = []
    for activity in (controller or {}).get("processing_activities") or ():
        direct = sorted(
            (p for p in snapshot.parties.values() if _is_recipient(p, snapshot, activity, as_of)),
            key=lambda p: (ROLE_ORDER.get(p.role, 9), p.key),
        )
        recipients: list[dict[str, Any]] = []
        transfers: list[dict[str, Any]] = []
        seen: set[str] = set()
        for party in direct:
            entry = _recipient(party, snapshot, activity, as_of, None, verdicts)
            recipients.append(entry)
            seen.add(party.key)
            transfers += _transfers(party, snapshot, entry, territories_of(party))
        for party in direct:
            for chain, _link, sub, _first in walk_chain(party, snapshot.parties):
                if sub is not None and sub.key not in seen:
                    seen.add(sub.key)
                    entry = _recipient(sub, snapshot, activity, as_of, chain, verdicts)
                    recipients.append(entry)
                    if entry["transfers_outside_eea_permitted"]:
                        transfers += _transfers(sub, snapshot, entry, [])
        entries.append(
            {
                "key": activity["key"],
                "name": text_in(activity["name"], language),
                "purposes": list(activity["purposes"]),
                "purposes_text": [term_label(vocabulary, k, language) for k in activity["purposes"]],
                "legal_basis": activity["legal_basis"],
                "legal_basis_text": translate(LEGAL_BASIS_LABELS.get(activity["legal_basis"], "")),
                "data_subjects": list(activity["data_subjects"]),
                "data_subjects_text": [term_label(vocabulary, k, language) for k in activity["data_subjects"]],
                "data_categories": list(activity["data_categories"]),
                "data_categories_text": [term_label(vocabulary, k, language) for k in activity["data_categories"]],
                "direct_marketing": bool(activity.get("direct_marketing")),
                "recipients": recipients,
                "transfers": transfers,
                "retention": text_in(activity["retention"], language),
                "security_measures": text_in(activity["security_measures"], language),
            }
        )
    return entries


def controller_entry(controller: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Art. 30(1)(a): the controller's name and contact details."""
    if controller is None:
        return None
    return {
        "name": controller.get("name"),
        "established_in": controller.get("established_in"),
        "timezone": controller.get("timezone"),
        "contact": dict(controller.get("contact") or {}),
    }


# --- Edits of one activity (the UI's form) ------------------------------------------------------------------


def _activities(profile: ControllerProfile | None) -> list[dict[str, Any]]:
    if profile is None:
        raise RegistryValidationError(
            [FieldError("controller", "the registry has no controller yet: import a registry document first")]
        )
    return [dict(a) for a in profile.processing_activities or ()]


def validated_activity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One activity as the form sent it, validated as the registry document validates it."""
    from pydantic import ValidationError

    try:
        return ProcessingActivityIn.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None


async def save_activity(
    session: AsyncSession, activity: dict[str, Any], actor: str, replacing: str | None = None
) -> None:
    """Create an activity, or replace the one keyed `replacing` (its key may change); history and the guard's
    reload as for any registry write (the guard publishes its purposes and obeys its direct-marketing flag)."""
    from registry.services.common import change_record, finish_write, lock_registry_for_write
    from registry.services.documents import controller_document

    await lock_registry_for_write(session)
    profile = await session.get(ControllerProfile, 1)
    activities = _activities(profile)
    assert profile is not None
    before = controller_document(profile)
    keys = [a["key"] for a in activities]
    if replacing is not None and replacing not in keys:
        raise NotFoundError(f"no processing activity with key {replacing!r}")
    if activity["key"] != replacing and activity["key"] in keys:
        raise RegistryValidationError(
            [FieldError("key", f"duplicate key {activity['key']!r}: another activity has it", "listed_twice")]
        )
    if replacing is None:
        activities.append(activity)
    else:
        activities[keys.index(replacing)] = activity
    profile.processing_activities = activities
    session.add(change_record("controller", "controller", "update", actor, before, controller_document(profile)))
    await finish_write(session, "registry:activity", everything=True)


async def delete_activity(session: AsyncSession, key: str, actor: str) -> None:
    from registry.services.common import change_record, finish_write, lock_registry_for_write
    from registry.services.documents import controller_document

    await lock_registry_for_write(session)
    profile = await session.get(ControllerProfile, 1)
    activities = _activities(profile)
    assert profile is not None
    if key not in [a["key"] for a in activities]:
        raise NotFoundError(f"no processing activity with key {key!r}")
    before = controller_document(profile)
    remaining = [a for a in activities if a["key"] != key]
    profile.processing_activities = remaining or None
    session.add(change_record("controller", "controller", "update", actor, before, controller_document(profile)))
    await finish_write(session, "registry:activity", everything=True)
