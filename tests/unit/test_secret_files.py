"""Two instances starting at once on a fresh data folder (issue 33, finding 10): one key is made, and every
process reads it whole, never a half-written file."""

import multiprocessing
from pathlib import Path

from guard.subjects import load_or_create_key_file
from ledger.checkpoint import load_or_create_signer


def _subject_key(path: str) -> str:
    return load_or_create_key_file(Path(path)).hex()


def _signing_key(path: str) -> str:
    return load_or_create_signer(Path(path), "offix-registry/guard-decisions").verifier.text()


def test_processes_racing_on_a_fresh_folder_all_get_the_one_subject_key_and_signing_key(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        subject_keys = pool.map(_subject_key, [str(tmp_path / "subject.key")] * 24)
        signing_keys = pool.map(_signing_key, [str(tmp_path / "log-signing.key")] * 24)
    assert len(set(subject_keys)) == 1 and len(set(signing_keys)) == 1
    assert (tmp_path / "subject.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "log-signing.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log-signing.key", "subject.key"]  # no leftovers
