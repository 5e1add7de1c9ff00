"""The rules about agreements (DESIGN §4.3): in force on a day, covering a
request, complete (Art. 28(3)), permitting transfers, lapsing soon."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from guard.views import AgreementView, Holdings, PartyView, Reason, ShareRequest
from guard.vocabulary import (
    AGREEMENT_KIND_NAMES,
    ART28_CLAUSE_LETTERS,
    REQUIRED_AGREEMENT_KIND,
    ReasonCode,
    entries_covering,
)

# --- Agreements -------------------------------------------------------------------------------------


def _why_not_in_force(agreement: AgreementView, day: date) -> str | None:
    if agreement.signed_on is None:
        return "is not signed"
    if day < agreement.signed_on:
        return f"is signed only on {agreement.signed_on.isoformat()}"
    if day < agreement.effective_from:
        return f"takes effect only on {agreement.effective_from.isoformat()}"
    if agreement.terminated_on is not None and day >= agreement.terminated_on:
        return f"was terminated on {agreement.terminated_on.isoformat()}"
    if agreement.expires_on is not None and day > agreement.expires_on:
        return f"expired on {agreement.expires_on.isoformat()}"
    return None


@dataclass(slots=True)  # not frozen: made for every agreement in force on every check, and never kept
class _Coverage:
    agreement: AgreementView
    uncovered_categories: tuple[str, ...]
    purpose_uncovered: bool
    subject_uncovered: bool
    missing_clauses: tuple[str, ...]

    @property
    def gaps(self) -> int:
        """How many parts of the request the agreement does not cover."""
        return len(self.uncovered_categories) + self.purpose_uncovered + self.subject_uncovered

    @property
    def reasons_against(self) -> int:
        """How many reasons the agreement would give: one per gap, one if a dpa lacks clauses, and one if it
        permits transfers outside the EEA."""
        return self.gaps + bool(self.missing_clauses) + self.agreement.transfers_outside_eea_permitted


def covered_by_any(entries: frozenset[str], key: str) -> bool:
    return not entries.isdisjoint(entries_covering(key))


def _coverage(
    agreement: AgreementView, categories: Sequence[str], purpose: str | None, subject: str | None
) -> _Coverage:
    return _Coverage(
        agreement=agreement,
        uncovered_categories=tuple(c for c in categories if not covered_by_any(agreement.category_entries, c)),
        purpose_uncovered=purpose is not None and not covered_by_any(agreement.purpose_entries, purpose),
        subject_uncovered=subject is not None and not covered_by_any(agreement.subject_entries, subject),
        missing_clauses=agreement.missing_clauses,
    )


def _preference(coverage: _Coverage) -> tuple[int, bool, bool, int, int, int, str]:
    """An agreement covering the whole request first, then one with its Art. 28(3) clauses; then the latest expiry
    (open-ended is latest), latest start, and key for ties. Coverage comes first so that a share an agreement in
    force covers is refused, if at all, for what is wrong with that agreement (which the registry's findings name:
    a dpa lacking clauses), not for what another agreement does not cover. Then one not permitting transfers (any
    agreement in force that permits them blocks whichever is chosen, but the share should not rest on it)."""
    agreement = coverage.agreement
    expires = agreement.expires_on
    return (
        coverage.gaps,
        bool(coverage.missing_clauses),
        agreement.transfers_outside_eea_permitted,
        0 if expires is None else 1,
        0 if expires is None else -expires.toordinal(),
        -agreement.effective_from.toordinal(),
        agreement.key,
    )


def party_label(party: PartyView) -> str:
    return f"{party.name} ({party.key})"


def is_authority(party: PartyView) -> bool:
    """An authority by role or by category: a row filed as category authority with another role (refused on
    write now, but possibly stored before that check existed) must not fail open."""
    return party.role == "authority" or party.category == "authority"


def permits_transfer_reason(party: PartyView, agreement: AgreementView, chain: tuple[str, ...] | None = None) -> Reason:
    whose = (
        party_label(party) if chain is None else f"sub-processor {party_label(party)}, in the chain {' → '.join(chain)}"
    )
    return Reason(
        ReasonCode.AGREEMENT_PERMITS_TRANSFER,
        f"Agreement {agreement.key} with {whose} permits transfers outside the EU/EEA "
        "(transfers_outside_eea_permitted); the policy allows none (Art. 28(3)(a)).",
        party=party.key,
        agreement=agreement.key,
        chain=chain,
    )


def _kind_name(kind: str) -> str:
    return AGREEMENT_KIND_NAMES.get(kind, f"'{kind}' agreement")


def _no_agreement_reason(party: PartyView, agreements: Sequence[AgreementView], kind: str, day: date) -> Reason:
    message = f"{party_label(party)} has no {_kind_name(kind)} in force on {day.isoformat()}"
    lapsed = sorted(
        (a for a in agreements if a.kind == kind),
        key=lambda a: (a.expires_on or date.max, a.effective_from, a.key),
        reverse=True,
    )
    if lapsed:
        latest = lapsed[0]
        message += f": agreement {latest.key} {_why_not_in_force(latest, day)}"
        return Reason(ReasonCode.NO_AGREEMENT, message + ".", party=party.key, agreement=latest.key)
    other_kinds = sorted({a.kind for a in agreements})
    if other_kinds:
        message += (
            f": it has only {' and '.join('a ' + _kind_name(k) for k in other_kinds)}, "
            f"and the role {party.role} needs a {_kind_name(kind)}"
        )
    return Reason(ReasonCode.NO_AGREEMENT, message + ".", party=party.key)


def _incomplete_reason(party: PartyView, agreement: AgreementView) -> Reason | None:
    missing = agreement.missing_clauses
    if not missing:
        return None
    listed = ", ".join(f"{ART28_CLAUSE_LETTERS[c]} {c}" for c in missing)
    return Reason(
        ReasonCode.AGREEMENT_INCOMPLETE,
        f"Agreement {agreement.key} with {party_label(party)} lacks Art. 28(3) clauses: {listed}.",
        party=party.key,
        agreement=agreement.key,
        clauses=missing,
    )


def agreement_findings(
    party: PartyView,
    snapshot: Holdings,
    day: date,
    categories: Sequence[str] = (),
    purpose: str | None = None,
    subject: str | None = None,
    *,
    require: bool = True,
) -> tuple[list[Reason], AgreementView | None]:
    """Choose the in-force agreement of the kind the role needs that best covers the request.

    Returns the reasons against it (or against its absence) and the agreement chosen, if any.
    """
    if is_authority(party):
        return [], None
    kind = REQUIRED_AGREEMENT_KIND.get(party.role)
    if kind is None:
        message = f"{party_label(party)} has role '{party.role}', for which the policy knows no agreement."
        return [Reason(ReasonCode.NO_AGREEMENT, message, party=party.key)], None
    agreements = snapshot.agreements_by_party.get(party.key, ())
    # Any agreement in force that permits transfers blocks, whichever one the share rests on (Art. 28(3)(a), 44):
    # the processor may transfer under it without asking again.
    permitting = [
        permits_transfer_reason(party, a)
        for a in agreements
        if a.transfers_outside_eea_permitted and a.in_force_on(day)
    ]
    in_force = [a for a in agreements if a.kind == kind and a.in_force_on(day)]
    if not in_force:
        return ([_no_agreement_reason(party, agreements, kind, day)] if require else []) + permitting, None

    coverages = [_coverage(a, categories, purpose, subject) for a in in_force]
    best = coverages[0] if len(coverages) == 1 else min(coverages, key=_preference)
    chosen = best.agreement
    about = f"Agreement {chosen.key} with {party_label(party)}"
    reasons = [
        Reason(
            ReasonCode.CATEGORY_NOT_COVERED,
            f"{about} does not cover the data category '{category}'.",
            party=party.key,
            agreement=chosen.key,
            category=category,
        )
        for category in best.uncovered_categories
    ]
    if best.purpose_uncovered:
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_NOT_COVERED,
                f"{about} does not cover the purpose '{purpose}'.",
                party=party.key,
                agreement=chosen.key,
            )
        )
    if best.subject_uncovered:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                f"{about} does not cover the data subject '{subject}'.",
                party=party.key,
                agreement=chosen.key,
            )
        )
    incomplete = _incomplete_reason(party, chosen)
    if incomplete is not None:
        reasons.append(incomplete)
    reasons.extend(permitting)
    return reasons, chosen


def last_day_in_force(agreement: AgreementView) -> date | None:
    """The agreement's last day in force (§4.3): its expiry, or the day before its termination; None if open."""
    ends = [agreement.expires_on] if agreement.expires_on is not None else []
    if agreement.terminated_on is not None:
        ends.append(agreement.terminated_on - timedelta(days=1))
    return min(ends, default=None)


def _successor(
    party: PartyView,
    snapshot: Holdings,
    ending: AgreementView,
    last_day: date,
    categories: Sequence[str],
    purpose: str | None,
    subject: str | None,
) -> AgreementView | None:
    """An agreement already on file that takes over this share the day after `ending` lapses: same kind, in
    force that day, covering the request with no reason against it."""
    next_day = last_day + timedelta(days=1)
    for candidate in snapshot.agreements_by_party.get(party.key, ()):
        if (
            candidate.key != ending.key
            and candidate.kind == ending.kind
            and candidate.in_force_on(next_day)
            and _coverage(candidate, categories, purpose, subject).reasons_against == 0
        ):
            return candidate
    return None


def lapse_warning(
    party: PartyView,
    agreement: AgreementView,
    snapshot: Holdings,
    request: ShareRequest,
    day: date,
    within_days: int,
) -> Reason | None:
    """AGREEMENT_EXPIRING: the agreement this share rests on stops being in force within the window (it
    expires or is terminated) and no successor on file takes the share over."""
    last_day = last_day_in_force(agreement)
    if last_day is None:
        return None
    days_left = (last_day - day).days
    if not 0 <= days_left <= within_days:
        return None
    if _successor(party, snapshot, agreement, last_day, request.data_categories, request.purpose, request.data_subject):
        return None
    when = "today" if days_left == 0 else f"in {days_left} day{'s' if days_left != 1 else ''}"
    if agreement.expires_on == last_day:
        ends = f"expires on {last_day.isoformat()} ({when})"
    else:
        assert agreement.terminated_on is not None  # the only other way to have a last day
        ends = f"is terminated from {agreement.terminated_on.isoformat()} (its last day in force is {when})"
    message = (
        f"Agreement {agreement.key} with {party_label(party)} {ends}; after that the guard blocks shares to "
        f"{party.key} until an agreement in force covers them"
    )
    if agreement.renewal == "auto" and agreement.expires_on == last_day:
        message += " (it renews automatically: record the new term in the registry)"
    return Reason(ReasonCode.AGREEMENT_EXPIRING, message + ".", party=party.key, agreement=agreement.key)
