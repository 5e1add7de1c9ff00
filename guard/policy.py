"""The guard's policy (DESIGN §4.2, §4.3): a pure decision over an in-memory snapshot of the registry.

No I/O, no clock, no ORM: the caller passes the snapshot and the controller's calendar date, so the same
inputs always give the same decision and the rules can be tested as a table.

Choices made where the design is silent (each one fails closed):

- An unknown ``data_subject`` is reported as ``SUBJECT_NOT_COVERED`` (§4.2 has no ``SUBJECT_UNKNOWN``
  and the codes are stable): no agreement can cover a subject the taxonomy does not know.
- Unknown categories, purpose and subject are reported once, as unknown, and left out of the coverage
  measure (so they do not also produce ``*_NOT_COVERED``). Special categories are a property of the
  request, so they are reported even when the recipient is unknown.
- A sub-processor link to a party missing from the snapshot is ``SUBPROCESSOR_UNAPPROVED`` (a party the
  registry does not hold cannot have been approved), with its chain.
- Inactive sub-processors stay in the chain: the link is the declaration that data may flow there.
  Approval belongs to the link, so it is checked on every link; a party's territories are reported once,
  on the first chain (depth-first) that reaches it. Cycles are walked once.
- An ``approved_on`` after today is not yet an approval.
- A destination is declared by the recipient's own territories only (its establishment and its locations
  of any kind), as §4.2 says: a territory only a sub-processor declares does not declare it. A destination
  subdivision is declared when it or any of its ISO ancestors (parent subdivision, country) is declared:
  declaring ``ES`` declares ``ES-CN``. A country is declared only by itself: declaring ``ES-CN`` does not
  declare all of ``ES``.
- Of the in-force agreements of the kind the role needs, one covering the whole request is chosen first, then
  one with its Art. 28(3) clauses, so a complete covering dpa is never passed over for an incomplete one that
  happens to expire later, and a share only an incomplete dpa covers is refused as ``AGREEMENT_INCOMPLETE``
  (which the registry's findings name), not as a gap of another agreement.
- A request naming no data subject is ``SUBJECT_NOT_COVERED``: no agreement can be checked to cover it (the
  HTTP contract requires the field; the policy fails closed on its own).
- An authority gets ``RECIPIENT_IS_AUTHORITY`` and no agreement check; a role the policy does not know
  gets ``NO_AGREEMENT``.
- ``evaluate_party`` does not ask a sub-processor for its own agreement with the controller (Art. 28(4)
  binds it through its processor), but a dpa it does have is still checked for its clauses.

Choices a legal review confirmed (each defensible under the GDPR and Offix's promise that no
personal data leaves the EU/EEA):

- Svalbard is outside: the EEA Agreement does not apply to it (Protocol 40), and ``SJ`` names Svalbard and Jan
  Mayen with one code, so ``SJ`` is outside; only ``NO-22`` (Jan Mayen alone) is inside.
- Adequacy never opens a share: an Art. 45 decision makes a transfer lawful, but Offix promises no transfer at
  all, so a territory outside the EEA blocks whatever the Commission decided about it.
- A pending sub-processor blocks its whole processor: the processor may not engage it before authorisation
  (Art. 28(2)), and the guard cannot tell which shares the processor routes through it, so every share to the
  processor waits.
- An establishment outside the EEA blocks even when the data stays inside: a party established there is subject
  to its own country's access laws over data it holds anywhere, and remote access from there is a transfer.
- An agreement that permits transfers outside the EEA blocks (``AGREEMENT_PERMITS_TRANSFER``), even when no
  location is outside today: Art. 28(3)(a) makes the transfer instruction part of the contract, and the contract
  lets the processor transfer without asking again. Any agreement of the party in force counts, not only the one
  the share rests on. The same for a sub-processor's own dpa in force.
- An international organisation (Art. 4(26)) blocks (``RECIPIENT_INTERNATIONAL_ORGANISATION``) as a recipient and
  in a sub-processor chain: a share to one is a transfer (Art. 44) wherever its office is.
- A party of category ``authority`` is an authority whatever its role (``RECIPIENT_IS_AUTHORITY``); the registry
  refuses the combination when written, this keeps rows written before that rule from failing open.
- Sub-processor links (Art. 28(2)): a ``specific`` authorisation is in effect from ``approved_on``; a ``general``
  one from ``approved_on`` or from the day after the objection deadline passed without an objection, whichever
  comes first. Silence counts only when the change was notified (``notified_on``) before the deadline: without a
  notice there was no real opportunity to object (the registry refuses a deadline on or before the notice). An
  objected link blocks for good (``SUBPROCESSOR_OBJECTED``), even when also approved.
- Published purposes: when the controller has published its purposes, a share for any other purpose is
  ``PURPOSE_NOT_PUBLISHED``; a purpose entry of an agreement is published when it is equal to or under one of
  them (an agreement covering ``marketing`` when only ``marketing.communications.email`` is published is a
  finding). The check is a property of the request, so it is made even for an unknown recipient.
- A territory and its ISO alias (``RE`` and ``FR-974``) are one place in every rule: the table gives both the
  same status, and a recipient declaring either declares both (see ``territory_enclosures``).
- Data subjects' objections (Art. 21): an objection of scope ``direct_marketing`` covers every direct-marketing
  purpose (Art. 21(3) makes it absolute), one of scope ``all`` every purpose; a covered share is
  ``SUBJECT_OBJECTED``. Direct-marketing purposes are those under ``marketing`` and those the controller's
  processing activities mark ``direct_marketing`` (Offix's ``sales`` outreach: Art. 21(2)-(3), recital 70), with
  everything under them (``Snapshot.direct_marketing_purposes``). A share for a direct-marketing purpose that names
  no subject (``subject_ref``) cannot be checked against objections and is ``SUBJECT_REF_MISSING``. The objections
  come in as data (subject reference → scopes); the policy never sees an identifier, only the keyed digest the
  service made of it.
- Restrictions (Art. 18): while a person's processing is restricted, every share naming them is
  ``SUBJECT_RESTRICTED``, whatever the purpose. They come in as data too (subject reference → restrictions).
"""

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from guard.agreements import (
    _incomplete_reason,
    agreement_findings,
    covered_by_any,
    is_authority,
    lapse_warning,
    party_label,
)
from guard.places import destination_findings, places_verdict
from guard.views import (
    _SOME_SUBJECT,
    MARKETING,
    NO_OBJECTIONS,
    OBJECTION_SCOPE_DIRECT_MARKETING,
    AgreementView,
    Decision,
    Objections,
    PartyView,
    PlacesVerdict,
    Reason,
    ShareRequest,
)
from guard.vocabulary import (
    DECISION_MEMO_MAX_CATEGORIES,
    DECISION_MEMO_SIZE,
    KNOWN_DATA_CATEGORIES,
    KNOWN_DATA_SUBJECTS,
    KNOWN_PURPOSES,
    REQUIRED_AGREEMENT_KIND,
    ReasonCode,
    covers,
    special_category_roots_in,
)
from kernel.defaults import DEFAULT_EXPIRING_WITHIN_DAYS

# --- The snapshot, with its memo of decisions --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    parties: Mapping[str, PartyView]
    agreements_by_party: Mapping[str, tuple[AgreementView, ...]]
    ruleset: str
    # The purposes the controller's privacy policy publishes (taxonomy keys); None: not set, so not checked.
    published_purposes: frozenset[str] | None = None
    # Purposes beyond ``marketing`` that are direct marketing: every purpose of a processing activity marked
    # ``direct_marketing`` (`direct_marketing_purposes`); they need a subject and obey direct-marketing objections.
    direct_marketing_purposes: frozenset[str] = frozenset()
    # What each party's places and chain say (see `PlacesVerdict`), worked out the first time a check needs it:
    # a memo of a function of the frozen contents above, so it never changes an answer. Not worked out for all
    # parties up front, because a pathological registry (a chain thousands deep) would stall every reload.
    _places: dict[str, "PlacesVerdict"] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Decisions already taken on this snapshot, by request and day: integrations ask the same few questions over
    # and over (every order of a webshop sends the same recipient, purpose and categories). A memo of `decide`,
    # a pure function of the request, this snapshot and the day, so it never changes an answer; bounded.
    _decisions: dict[tuple["ShareRequest", date, int], "Decision"] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def places_of(self, party: PartyView) -> "PlacesVerdict":
        if self.parties.get(party.key) is not party:
            return places_verdict(party, self)  # a party from elsewhere, checked against this registry
        verdict = self._places.get(party.key)
        if verdict is None:
            verdict = self._places[party.key] = places_verdict(party, self)
        return verdict

    def changed(
        self,
        parties: Mapping[str, PartyView],
        agreements_by_party: Mapping[str, tuple[AgreementView, ...]],
        ruleset: str,
        stale: Collection[str],
    ) -> "Snapshot":
        """This snapshot after a registry change: new contents, and the memo of places and chains kept for every
        party not in `stale` (the caller names every party whose places or chain the change may alter: the
        changed parties and every processor whose chain reaches one). Decisions are taken afresh."""
        after = replace(self, parties=parties, agreements_by_party=agreements_by_party, ruleset=ruleset)
        after._places.update((key, verdict) for key, verdict in self._places.items() if key not in stale)
        return after

    def decision(
        self,
        request: "ShareRequest",
        today: date,
        *,
        expiring_within_days: int = DEFAULT_EXPIRING_WITHIN_DAYS,
        objections: Objections = NO_OBJECTIONS,
        restrictions: Objections = NO_OBJECTIONS,
    ) -> "Decision":
        """`decide(request, self, today, ...)`, taken once per distinct request and day; a subject's objections
        and restrictions are applied to the memoized answer, so that one memo entry serves every person."""
        if request.subject_ref is not None and request.subject_ref != _SOME_SUBJECT:
            anyone = dataclasses.replace(request, subject_ref=_SOME_SUBJECT)
            general = self.decision(anyone, today, expiring_within_days=expiring_within_days)
            return with_objections(general, request, objections, self.direct_marketing_purposes, restrictions)
        if len(request.data_categories) > DECISION_MEMO_MAX_CATEGORIES:
            return decide(request, self, today, expiring_within_days=expiring_within_days)
        key = (request, today, expiring_within_days)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= DECISION_MEMO_SIZE:  # distinct requests must not grow memory without bound
                self._decisions.clear()
            decision = self._decisions[key] = decide(request, self, today, expiring_within_days=expiring_within_days)
        return decision


# --- The request's own references ------------------------------------------------------------------


def _request_findings(
    request: ShareRequest, categories: Sequence[str], snapshot_published: frozenset[str] | None
) -> list[Reason]:
    reasons = [
        Reason(
            ReasonCode.CATEGORY_UNKNOWN,
            f"'{category}' is not a data category of the Fides taxonomy.",
            category=category,
        )
        for category in categories
        if category not in KNOWN_DATA_CATEGORIES
    ]
    if request.purpose not in KNOWN_PURPOSES:
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_UNKNOWN,
                f"'{request.purpose}' is not a purpose (data use) of the Fides taxonomy.",
            )
        )
    if (
        snapshot_published is not None
        and request.purpose in KNOWN_PURPOSES
        and not covered_by_any(snapshot_published, request.purpose)
    ):
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_NOT_PUBLISHED,
                f"The purpose '{request.purpose}' is not among the purposes the controller's privacy policy "
                f"publishes ({', '.join(sorted(snapshot_published))}).",
            )
        )
    if request.data_subject is None:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                "The request names no data subject, so no agreement can be checked to cover the people whose "
                "data is shared (Art. 28(3)).",
            )
        )
    elif request.data_subject not in KNOWN_DATA_SUBJECTS:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                f"'{request.data_subject}' is not a data subject of the Fides taxonomy, so no agreement can cover it.",
            )
        )
    for category in categories:
        roots = special_category_roots_in(category)
        if not roots:
            continue
        if covers(roots[0], category):
            message = f"'{category}' is special-category data (GDPR Art. 9/10); the policy allows no sharing of it."
        else:
            message = (
                f"'{category}' includes special-category data (GDPR Art. 9/10: {', '.join(roots)}); "
                "the policy allows no sharing of it, so request only the narrower categories needed."
            )
        reasons.append(Reason(ReasonCode.SPECIAL_CATEGORY, message, category=category))
    return reasons


# --- Entry points -----------------------------------------------------------------------------------


def is_marketing(purpose: str, direct_marketing: Collection[str] = frozenset()) -> bool:
    """Whether `purpose` is direct marketing: under ``marketing``, or under one of the purposes the controller's
    processing activities mark as direct marketing (`direct_marketing`)."""
    return covers(MARKETING, purpose) or any(covers(entry, purpose) for entry in direct_marketing)


def direct_marketing_purposes(activities: Iterable[Mapping[str, Any]] | None) -> frozenset[str]:
    """The purposes of the processing activities marked ``direct_marketing`` (DESIGN §2)."""
    return frozenset(p for a in activities or () if a.get("direct_marketing") for p in a.get("purposes") or ())


def published_with_activities(
    published: Iterable[str] | None, activities: Iterable[Mapping[str, Any]] | None
) -> frozenset[str] | None:
    """The published purposes: `published` and every processing activity's purposes (None when neither is
    given: the controller has not published its purposes, so they are not checked)."""
    from_activities = {p for a in activities or () for p in a.get("purposes") or ()}
    if published is None and not from_activities:
        return None
    return frozenset(published or ()) | from_activities


def objection_covers(scope: str, purpose: str, direct_marketing: Collection[str] = frozenset()) -> bool:
    """Whether an objection of `scope` covers a share for `purpose` (an unknown scope covers everything: fail
    closed); `direct_marketing` the controller's direct-marketing purposes beyond ``marketing``."""
    return scope != OBJECTION_SCOPE_DIRECT_MARKETING or is_marketing(purpose, direct_marketing)


def objection_reasons(
    request: ShareRequest, objections: Objections, direct_marketing: Collection[str] = frozenset()
) -> tuple[Reason, ...]:
    """SUBJECT_OBJECTED when an objection of the request's subject covers its purpose."""
    if request.subject_ref is None:
        return ()
    scopes = objections.get(request.subject_ref)
    if not scopes:
        return ()
    covering = sorted({scope for scope in scopes if objection_covers(scope, request.purpose, direct_marketing)})
    if not covering:
        return ()
    return (
        Reason(
            ReasonCode.SUBJECT_OBJECTED,
            f"The data subject has objected ({', '.join(covering)}) to processing for '{request.purpose}'.",
        ),
    )


def restriction_reasons(request: ShareRequest, restrictions: Objections) -> tuple[Reason, ...]:
    """SUBJECT_RESTRICTED when the request's subject has a restriction in force (Art. 18): every purpose."""
    if request.subject_ref is None or not restrictions.get(request.subject_ref):
        return ()
    return (
        Reason(
            ReasonCode.SUBJECT_RESTRICTED,
            "The data subject's processing is restricted (Art. 18): no share until the restriction is lifted.",
        ),
    )


def with_objections(
    decision: Decision,
    request: ShareRequest,
    objections: Objections,
    direct_marketing: Collection[str] = frozenset(),
    restrictions: Objections = NO_OBJECTIONS,
) -> Decision:
    """`decision` (taken for any subject) with the request's own subject's objections and restriction added."""
    extra = objection_reasons(request, objections, direct_marketing) + restriction_reasons(request, restrictions)
    if not extra:
        return decision
    return Decision(
        allowed=False,
        reasons=(*decision.reasons, *extra),
        warnings=decision.warnings,
        agreement=decision.agreement,
        ruleset=decision.ruleset,
    )


def decide(
    request: ShareRequest,
    snapshot: Snapshot,
    today: date,
    *,
    expiring_within_days: int = DEFAULT_EXPIRING_WITHIN_DAYS,
    objections: Objections = NO_OBJECTIONS,
    restrictions: Objections = NO_OBJECTIONS,
) -> Decision:
    """The guard's answer to one share: every reason that applies, and allowed only when there is none."""
    decision = _decide(request, snapshot, today, expiring_within_days=expiring_within_days)
    return with_objections(decision, request, objections, snapshot.direct_marketing_purposes, restrictions)


def _decide(request: ShareRequest, snapshot: Snapshot, today: date, *, expiring_within_days: int) -> Decision:
    categories = tuple(dict.fromkeys(request.data_categories))
    recipient = snapshot.parties.get(request.recipient)
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    chosen: AgreementView | None = None
    declared: frozenset[str] = frozenset()
    declared_places: frozenset[str] = frozenset()

    if recipient is None:
        reasons.append(
            Reason(
                ReasonCode.RECIPIENT_UNKNOWN,
                f"The recipient '{request.recipient}' is not in the registry.",
                party=request.recipient,
            )
        )
    else:
        if not recipient.active:
            reasons.append(
                Reason(
                    ReasonCode.RECIPIENT_INACTIVE,
                    f"{party_label(recipient)} is marked inactive in the registry.",
                    party=recipient.key,
                )
            )
        if is_authority(recipient):
            reasons.append(
                Reason(
                    ReasonCode.RECIPIENT_IS_AUTHORITY,
                    f"{party_label(recipient)} is an authority: disclosures to authorities are made manually "
                    "and logged, never automatically.",
                    party=recipient.key,
                )
            )

    reasons.extend(_request_findings(request, categories, snapshot.published_purposes))
    if request.subject_ref is None and is_marketing(request.purpose, snapshot.direct_marketing_purposes):
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_REF_MISSING,
                f"'{request.purpose}' is direct marketing: name the person (subject_ref) so that their objections "
                "can be checked; send a marketing list through check-batch, one request per person.",
            )
        )

    if recipient is not None:
        agreement_reasons, chosen = agreement_findings(
            recipient,
            snapshot,
            today,
            [c for c in categories if c in KNOWN_DATA_CATEGORIES],
            request.purpose if request.purpose in KNOWN_PURPOSES else None,
            request.data_subject if request.data_subject in KNOWN_DATA_SUBJECTS else None,
        )
        reasons.extend(agreement_reasons)
        places = snapshot.places_of(recipient)
        reasons.extend(places.own)
        reasons.extend(places.chain_reasons(today))
        declared = places.declared
        declared_places = places.declared_places
        if chosen is not None:
            warning = lapse_warning(recipient, chosen, snapshot, request, today, expiring_within_days)
            if warning is not None:
                warnings.append(warning)

    if request.destination is not None:
        reasons.extend(destination_findings(request.destination, recipient, declared, declared_places))

    return Decision(
        allowed=not reasons,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        agreement=None if chosen is None else chosen.key,
        ruleset=snapshot.ruleset,
    )


def evaluate_party(party: PartyView, snapshot: Snapshot, today: date) -> tuple[Reason, ...]:
    """Registry findings for one party, without a request: what would block every share to it.

    Checked the same way as ``decide``: agreement in force (and its Art. 28(3) clauses), the party's
    own places, and its whole sub-processor chain. Whether the party is active is the caller's filter.
    """
    agreement_reasons, _ = agreement_findings(party, snapshot, today, require=party.role != "sub_processor")
    places = snapshot.places_of(party)
    return (
        *agreement_reasons,
        *_other_incomplete_findings(party, snapshot, today, agreement_reasons),
        *_unpublished_purpose_findings(party, snapshot, today),
        *_special_category_findings(party, snapshot, today),
        *places.own,
        *places.chain_reasons(today),
    )


def _other_incomplete_findings(
    party: PartyView, snapshot: Snapshot, today: date, reported: Sequence[Reason]
) -> list[Reason]:
    """Every other dpa in force that lacks Art. 28(3) clauses: a share only it covers is refused
    (``AGREEMENT_INCOMPLETE``) even when a complete agreement covers other shares."""
    kind = REQUIRED_AGREEMENT_KIND.get(party.role)
    if kind is None or is_authority(party):
        return []
    named = {r.agreement for r in reported if r.code == ReasonCode.AGREEMENT_INCOMPLETE}
    found = (
        _incomplete_reason(party, agreement)
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.kind == kind and agreement.key not in named and agreement.in_force_on(today)
    )
    return [reason for reason in found if reason is not None]


def _special_category_findings(party: PartyView, snapshot: Snapshot, today: date) -> list[Reason]:
    """An agreement in force covering special-category data (Art. 9/10): the contract allows shares the guard
    refuses (``SPECIAL_CATEGORY``), like a purpose the controller does not publish."""
    return [
        Reason(
            ReasonCode.SPECIAL_CATEGORY,
            f"Agreement {agreement.key} with {party_label(party)} covers the data category '{category}', which is or "
            "includes special-category data (GDPR Art. 9/10); the policy allows no sharing of it.",
            party=party.key,
            agreement=agreement.key,
            category=category,
        )
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.in_force_on(today)
        for category in agreement.data_categories
        if special_category_roots_in(category)
    ]


def _unpublished_purpose_findings(party: PartyView, snapshot: Snapshot, today: date) -> list[Reason]:
    """An agreement in force covering a purpose the controller does not publish: a share the guard would refuse
    (``PURPOSE_NOT_PUBLISHED``) that the contract allows, so the contract or the privacy policy is wrong."""
    published = snapshot.published_purposes
    if published is None:
        return []
    return [
        Reason(
            ReasonCode.PURPOSE_NOT_PUBLISHED,
            f"Agreement {agreement.key} with {party_label(party)} covers the purpose '{purpose}', which the "
            f"controller's privacy policy does not publish ({', '.join(sorted(published))}).",
            party=party.key,
            agreement=agreement.key,
        )
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.in_force_on(today)
        for purpose in agreement.purposes
        if not covered_by_any(published, purpose)
    ]
