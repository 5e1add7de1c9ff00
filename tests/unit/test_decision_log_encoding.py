"""The decision log's hash covers canonical JSON of each entry, now encoded with msgspec. It must equal what it
was defined as, json.dumps with sorted keys, compact separators and ensure_ascii=False, byte for byte, or the
entries logged before would stop verifying."""

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from ledger.checkpoint import LEGACY_WRITER
from ledger.entries import canonical_json, content_hash, entry_content, format_timestamp, new_decision_id

# Text JSON escapes, text it must not escape (ensure_ascii=False), and keys out of order.
AWKWARD_TEXT = [
    "plain",
    'quo"te',
    "back\\slash",
    "new\nline\ttab\r\b\f",
    "\x01\x1f\x7f",
    "åäö Ünïcødé",
    "→",
    "\u2028",
    "😀",
    "",
]


def reference_hash(prev_hash: str, **fields) -> str:
    """How the hash was first defined: the whole entry through json.dumps."""
    content = {**fields, "decision_id": str(fields["decision_id"])}
    if content["writer"] == LEGACY_WRITER:  # (the single chain before migration 0014 named its entries by seq)
        content["seq"] = content.pop("wseq")
        del content["writer"]
    content["decided_at"] = fields["decided_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode() + prev_hash.encode()).hexdigest()


def random_entry(rng: random.Random) -> dict:
    def text() -> str:
        return rng.choice(AWKWARD_TEXT) + rng.choice(AWKWARD_TEXT)

    def reason() -> dict:
        reason = {"message": text(), "code": rng.choice(["NO_AGREEMENT", "TERRITORY_UNKNOWN"]), "party": text()}
        if rng.random() < 0.5:
            reason["chain"] = [text() for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            reason["days"] = rng.randint(-5, 400)
        if rng.random() < 0.2:
            reason[text()] = None  # a key that sorts anywhere
        return reason

    request = {"recipient": text(), "purpose": text(), "data_categories": [text() for _ in range(rng.randint(1, 3))]}
    if rng.random() < 0.5:
        request["destination"] = text()
    return {
        "writer": rng.choice([LEGACY_WRITER, f"{rng.getrandbits(64):016x}"]),
        "wseq": rng.randint(1, 10**12),
        "decision_id": uuid.UUID(int=rng.getrandbits(128)),
        "decided_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randint(0, 10**14)),
        "caller": text(),
        "recipient": text(),
        "request": request,
        "allowed": rng.random() < 0.5,
        "reasons": [reason() for _ in range(rng.randint(0, 3))],
        "warnings": [reason() for _ in range(rng.randint(0, 1))],
        "agreement": rng.choice([None, text()]),
        "ruleset": text(),
    }


def test_canonical_json_is_json_dumps_with_sorted_keys_byte_for_byte():
    rng = random.Random(20261125)
    for _ in range(2000):
        value = random_entry(rng)
        value = {**value, "decision_id": str(value["decision_id"]), "decided_at": value["decided_at"].isoformat()}
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical_json(value) == expected


def test_entry_hashes_are_the_ones_json_dumps_gave():
    rng = random.Random(7)
    for _ in range(500):
        fields = random_entry(rng)
        prev_hash = f"{rng.getrandbits(256):064x}"
        assert content_hash(entry_content(**fields), prev_hash) == reference_hash(prev_hash, **fields)


def test_an_entry_of_a_writer_hashes_its_writer_and_place_in_that_writers_chain():
    fields = {
        "decision_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "decided_at": datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC),
        "caller": "webshop",
        "recipient": "nordfrakt",
        "request": {"recipient": "nordfrakt"},
        "allowed": True,
        "reasons": [],
        "warnings": [],
        "agreement": None,
        "ruleset": "eea-only@abc",
    }
    content = entry_content(writer="0123456789abcdef", wseq=7, **fields)
    assert (content["writer"], content["wseq"], "seq" in content) == ("0123456789abcdef", 7, False)
    moved = [
        entry_content(writer="fedcba9876543210", wseq=7, **fields),
        entry_content(writer="0123456789abcdef", wseq=8, **fields),
        entry_content(writer=LEGACY_WRITER, wseq=7, **fields),
    ]
    assert len({content_hash(c, "0" * 64) for c in [content, *moved]}) == 4


def test_a_known_entry_keeps_the_hash_it_was_logged_with():
    """Pinned to the hash the first implementation gave this entry: a change of the canonical form shows here
    before it breaks a real log."""
    fields = {
        "writer": LEGACY_WRITER,
        "wseq": 1,
        "decision_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "decided_at": datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC),
        "caller": "webshop",
        "recipient": "nordfrakt",
        "request": {
            "recipient": "nordfrakt",
            "purpose": "essential.service.operations",
            "data_categories": ["user.name"],
        },
        "allowed": True,
        "reasons": [],
        "warnings": [],
        "agreement": "nordfrakt-dpa-2024",
        "ruleset": "eea-only@abc",
    }
    pinned = "c90eac77646bd82d4e04b0bfa437f8e5ce3156b8189be14b608814e884918c3d"
    assert content_hash(entry_content(**fields), "0" * 64) == pinned


def test_an_entry_hashes_the_same_with_its_request_and_reasons_encoded_beforehand():
    """The writer encodes request, reasons and warnings once and hands them to the hash as they are; the
    verifier hashes the values read back. The two must meet."""
    rng = random.Random(11)
    for _ in range(500):
        fields = random_entry(rng)
        prev_hash = f"{rng.getrandbits(256):064x}"
        encoded = {name: msgspec.Raw(canonical_json(fields[name])) for name in ("request", "reasons", "warnings")}
        assert content_hash(entry_content(**{**fields, **encoded}), prev_hash) == reference_hash(prev_hash, **fields)


def test_a_decision_id_is_a_random_version_4_uuid_in_its_canonical_text_form():
    ids = [new_decision_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


def test_an_entry_hashes_the_same_with_its_time_given_as_the_answer_states_it():
    rng = random.Random(3)
    for _ in range(200):
        fields = random_entry(rng)
        stamp = format_timestamp(fields["decided_at"])
        as_answered = entry_content(**{**fields, "decided_at": stamp})
        assert content_hash(as_answered, "0" * 64) == reference_hash("0" * 64, **fields)


def test_an_entry_without_a_request_id_hashes_as_before_and_one_with_it_covers_it():
    fields = {
        "writer": "0123456789abcdef",
        "wseq": 1,
        "decision_id": "5b0e6a57-3f1c-4b7e-9a55-0c3a7d5b2f10",
        "decided_at": "2026-12-06T12:00:00.000000Z",
        "caller": "erp",
        "recipient": "nordfrakt",
        "request": {"recipient": "nordfrakt"},
        "allowed": True,
        "reasons": [],
        "warnings": [],
        "agreement": None,
        "ruleset": "offix-v1@1",
    }
    without = entry_content(**fields)
    assert "request_id" not in without
    assert entry_content(**fields, request_id=None) == without
    with_id = entry_content(**fields, request_id="order-4711")
    assert with_id["request_id"] == "order-4711"
    assert content_hash(with_id, "0" * 64) != content_hash(without, "0" * 64)
    assert content_hash(entry_content(**fields, request_id="order-4712"), "0" * 64) != content_hash(with_id, "0" * 64)
