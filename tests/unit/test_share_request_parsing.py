"""The guard parses a share request body twice over: msgspec straight from the bytes for the common, valid
body, and json.loads with the pydantic model for everything else, which also names every problem. The fast
path must never accept what the model refuses, nor read a body differently."""

import json
import random

import pytest

from guard.service import (
    BATCH_MAX,
    _fast_one,
    decode_body,
    parse_batch_body,
    parse_share_request,
    parse_share_request_body,
)
from kernel.errors import FieldError
from tests.conftest import SEED_ALLOWED_SHARE

FIELDS = (*SEED_ALLOWED_SHARE, "subject_ref", "extra")
REQUIRED = ("recipient", "purpose", "data_categories", "data_subject")


VALID_TEXTS = ("nordfrakt", "x" * 200, "\U0001f600" * 200, "ok\n", "Ålesund")  # lengths count characters
INVALID_TEXTS = ("", "x" * 201, "\U0001f600" * 201, "nord\x00frakt", None, 7, 1.5, True, [], ["user.name"], {})


def text(rng: random.Random) -> object:
    return rng.choice(VALID_TEXTS if rng.random() < 0.85 else INVALID_TEXTS)


def categories(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return text(rng)
    size = rng.choice([1, 2, 3, 100]) if rng.random() < 0.9 else rng.choice([0, 101])
    return [text(rng) if rng.random() < 0.05 else "user.name" for _ in range(size)]


# Identifiers: e-mail addresses in any case and spacing (normalised alike on both paths), and ones refused.
SUBJECT_REFS = (
    "Anna@Example.SE", " anna@example.se ", "Kund-0042", "Ålund@exempel.se", "x" * 320, "   ", "x" * 321,
    "a\x01b", "a\u2028b", "", 5,
)  # fmt: skip


def random_document(rng: random.Random) -> dict[str, object]:
    document: dict[str, object] = {}
    for name in FIELDS:
        if name == "subject_ref":
            if rng.random() < 0.5:
                document[name] = rng.choice(SUBJECT_REFS)
        elif rng.random() < (0.75 if name != "extra" else 0.03):
            document[name] = categories(rng) if name == "data_categories" else text(rng)
        elif name in REQUIRED and rng.random() < 0.9:
            document[name] = SEED_ALLOWED_SHARE[name]
    return document


def random_body(rng: random.Random) -> bytes:
    raw = json.dumps(random_document(rng), ensure_ascii=rng.random() < 0.5).encode()
    mutation = rng.random()
    if mutation < 0.05:
        raw = b"\xef\xbb\xbf" + raw  # a byte-order mark
    elif mutation < 0.1:
        raw = raw[:-1] + b',"recipient":"papyra"}'  # a key sent twice: the last one counts
    elif mutation < 0.13:
        raw = raw + b" x"
    elif mutation < 0.16:
        raw = raw.replace(b"nordfrakt", b"nord\\ud800frakt")  # a lone surrogate
    elif mutation < 0.19:
        raw = raw.replace(b"nordfrakt", b"nord\xfffrakt")  # not UTF-8
    elif mutation < 0.21:
        raw = b"[" + raw + b"]"
    return raw


def slow_path(raw: bytes) -> object:
    payload, errors = decode_body(raw)
    return errors or parse_share_request(payload)


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_and_the_thorough_parse_of_a_share_request_body_always_agree(seed):
    rng = random.Random(seed)
    verdicts = {"accepted": 0, "refused": 0}
    for _ in range(3000):
        raw = random_body(rng)
        parsed = parse_share_request_body(raw)
        assert parsed == slow_path(raw), raw
        verdicts["refused" if isinstance(parsed, list) else "accepted"] += 1
    assert min(verdicts.values()) > 300, verdicts  # the bodies exercise both verdicts


def test_a_body_sent_twice_the_same_key_is_read_as_json_reads_it_the_last_value_counts():
    raw = json.dumps(SEED_ALLOWED_SHARE).encode()[:-1] + b',"recipient":"papyra"}'
    parsed = parse_share_request_body(raw)
    assert not isinstance(parsed, list)
    assert parsed.recipient == "papyra"


def test_a_well_formed_body_takes_the_fast_path():
    assert _fast_one.decode(json.dumps(SEED_ALLOWED_SHARE).encode()).recipient == "nordfrakt"
    required_only = {k: SEED_ALLOWED_SHARE[k] for k in REQUIRED}
    assert _fast_one.decode(json.dumps(required_only).encode())


@pytest.mark.parametrize("missing", REQUIRED)
def test_a_body_missing_a_required_field_is_refused_by_both_parses_naming_it(missing):
    body = {k: v for k, v in SEED_ALLOWED_SHARE.items() if k != missing}
    raw = json.dumps(body).encode()
    parsed = parse_share_request_body(raw)
    assert isinstance(parsed, list)
    assert [e.field for e in parsed] == [missing]
    assert slow_path(raw) == parsed


@pytest.mark.parametrize("seed", range(2))
def test_the_fast_and_the_thorough_parse_of_a_batch_always_agree(seed):
    rng = random.Random(seed)
    for _ in range(300):
        items = [random_document(rng) if rng.random() < 0.3 else SEED_ALLOWED_SHARE for _ in range(rng.randint(0, 5))]
        raw = json.dumps(items).encode()
        slow = [parse_share_request(item, f"[{i}]") for i, item in enumerate(items)]
        errors = [e for s in slow if isinstance(s, list) for e in s]
        expected = errors or slow or [FieldError("(body)", f"a batch holds 1 to {BATCH_MAX} requests, this one has 0")]
        assert parse_batch_body(raw) == expected, raw


def test_a_batch_over_the_limit_is_refused_with_its_size():
    [error] = parse_batch_body(json.dumps([SEED_ALLOWED_SHARE] * (BATCH_MAX + 1)).encode())
    assert error == FieldError("(body)", f"a batch holds 1 to {BATCH_MAX} requests, this one has {BATCH_MAX + 1}")
