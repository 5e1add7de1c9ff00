"""Signed checkpoints (ledger/checkpoint.py): the C2SP signed-note and tlog-checkpoint formats, Ed25519."""

import stat

import pytest

from ledger.checkpoint import (
    LEGACY_WRITER,
    Checkpoint,
    CheckpointError,
    Verifier,
    heads_digest,
    load_or_create_signer,
    open_checkpoint,
    open_note,
)
from ledger.merkle import EMPTY_ROOT

# The signed-note example of golang.org/x/mod/sumdb/note (and the C2SP spec): a key made elsewhere.
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_a_note_signed_by_another_implementation_verifies_and_its_key_parses():
    verifier = Verifier.parse(PETER_KEY)
    assert verifier.text() == PETER_KEY
    assert open_note(PETER_NOTE, verifier).startswith("If you think cryptography")


def test_an_edited_note_is_refused():
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(PETER_NOTE.replace("problem,", "problem!"), Verifier.parse(PETER_KEY))


def test_the_signing_key_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "keys" / "log-signing.key"
    signer = load_or_create_signer(path, "example.com/log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signer(path, "example.com/log")
    assert again.verifier == signer.verifier
    assert Verifier.parse(signer.verifier.text()) == signer.verifier


def test_a_checkpoint_round_trips_through_its_signed_note(tmp_path):
    signer = load_or_create_signer(tmp_path / "key", "example.com/log")
    checkpoint = Checkpoint("example.com/log", 7, EMPTY_ROOT, "ab" * 32)
    note = signer.sign(checkpoint.body())
    assert note.startswith("example.com/log\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nheads abab")
    assert "\n\n\u2014 example.com/log " in note
    assert open_checkpoint(note, signer.verifier) == checkpoint


def test_a_checkpoint_of_the_single_chain_reads_as_the_digest_of_its_one_writer(tmp_path):
    """Checkpoints signed before the log had a chain per writer name the chain's hash: they still verify, and
    hold the legacy writer's head to it."""
    signer = load_or_create_signer(tmp_path / "key", "example.com/log")
    old = Checkpoint.of_chain("example.com/log", 7, EMPTY_ROOT, "cd" * 32)
    note = signer.sign(old.body())
    assert note.startswith("example.com/log\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nchain cdcd")
    opened = open_checkpoint(note, signer.verifier)
    assert opened == old
    assert opened.heads_digest == heads_digest({LEGACY_WRITER: (7, "cd" * 32)})
    assert opened.heads_digest != heads_digest({LEGACY_WRITER: (6, "cd" * 32)})
    assert heads_digest({"a": (1, "ab" * 32), "b": (2, "cd" * 32)}) == heads_digest(
        {"b": (2, "cd" * 32), "a": (1, "ab" * 32)}
    )


def test_a_checkpoint_with_its_size_changed_or_signed_by_another_key_is_refused(tmp_path):
    signer = load_or_create_signer(tmp_path / "key", "example.com/log")
    other = load_or_create_signer(tmp_path / "other", "example.com/log")
    note = signer.sign(Checkpoint("example.com/log", 7, EMPTY_ROOT, "ab" * 32).body())
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note.replace("\n7\n", "\n9\n", 1), signer.verifier)
    with pytest.raises(CheckpointError, match="no signature by the log's key"):
        open_checkpoint(note, other.verifier)
    with pytest.raises(CheckpointError):
        open_checkpoint("example.com/log\n7\n", signer.verifier)


def test_a_checkpoint_of_another_log_is_refused(tmp_path):
    signer = load_or_create_signer(tmp_path / "key", "other.example/log")
    note = signer.sign(Checkpoint("other.example/log", 1, EMPTY_ROOT, "ab" * 32).body())
    with pytest.raises(CheckpointError, match="another log"):
        Checkpoint.parse_body(open_note(note, signer.verifier), "example.com/log")
