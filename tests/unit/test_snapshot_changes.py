"""Applying a registry change to a snapshot (guard/snapshot.py): pure, so checked with views built here."""

from datetime import date

from guard.policy import Snapshot
from guard.snapshot import RegistryDelta, apply_delta, dependents, index_of
from guard.views import LocationView, PartyView, SubProcessorLinkView

DAY = date(2026, 11, 28)


def view(key: str, role: str, *subs: str, territory: str = "SE") -> PartyView:
    return PartyView(
        key=key,
        name=key.title(),
        role=role,
        category="it_services",
        established_in="SE",
        active=True,
        locations=(LocationView(territory=territory, kind="processing"),),
        sub_processors=tuple(
            SubProcessorLinkView(party=s, approved_on=date(2024, 1, 1), objection_deadline=None) for s in subs
        ),
    )


def registry() -> Snapshot:
    parties = [
        view("shop", "processor", "cloud"),
        view("mail", "processor", "relay"),
        view("cloud", "sub_processor", "disk"),
        view("relay", "sub_processor"),
        view("disk", "sub_processor"),
    ]
    return Snapshot(parties={p.key: p for p in parties}, agreements_by_party={}, ruleset="eea-only@1+r1")


def test_the_dependents_of_a_sub_processor_are_every_processor_whose_chain_reaches_it():
    index = index_of(registry())
    assert dependents(index.users, {"disk"}) == {"disk", "cloud", "shop"}
    assert dependents(index.users, {"relay"}) == {"relay", "mail"}


def test_dependents_stop_at_a_cycle():
    assert dependents({"a": ["b"], "b": ["a"]}, {"a"}) == {"a", "b"}


def test_a_change_deep_in_a_chain_is_seen_by_the_processor_above_and_other_memos_are_kept():
    snapshot = registry()
    index = index_of(snapshot)
    shop_before = snapshot.places_of(snapshot.parties["shop"])
    mail_before = snapshot.places_of(snapshot.parties["mail"])
    assert not shop_before.chain_reasons(DAY)

    moved = RegistryDelta(parties={"disk": view("disk", "sub_processor", territory="US")}, agreements={})
    after, after_index = apply_delta(snapshot, index, moved, "eea-only@1+r2")

    assert after.ruleset == "eea-only@1+r2"
    assert [r.chain for r in after.places_of(after.parties["shop"]).chain_reasons(DAY)] == [("shop", "cloud", "disk")]
    assert after.places_of(after.parties["mail"]) is mail_before  # its chain does not reach disk
    assert after_index == index_of(after)


def test_a_removed_party_and_a_relinked_processor_update_the_index():
    snapshot = registry()
    delta = RegistryDelta(parties={"relay": None, "mail": view("mail", "processor", "disk")}, agreements={})
    after, index = apply_delta(snapshot, index_of(snapshot), delta, "eea-only@1+r2")
    assert "relay" not in after.parties
    assert index.users == {"cloud": frozenset({"shop"}), "disk": frozenset({"cloud", "mail"})}
    assert index == index_of(after)
