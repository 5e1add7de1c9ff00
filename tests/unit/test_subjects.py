"""Data subjects' identifiers: normalised one way, digested under a key kept outside the database."""

import hashlib
import hmac
import os
import stat

import pytest

from guard.service import logged_request, pseudonymised
from guard.subjects import (
    SubjectError,
    SubjectKey,
    load_or_create_key_file,
    new_salt,
    normalise_subject,
    subject_commitment,
    subject_key_for,
)
from guard.views import ShareRequest
from kernel.settings import Settings, SettingsError
from web.access_log import redacted_path_with_query


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("  Anna.Berg@Example.SE ", "anna.berg@example.se"),
        ("ANNA.BERG@EXAMPLE.SE", "anna.berg@example.se"),
        ("Straße@Example.de", "strasse@example.de"),  # case-folded, not only lower-cased
        ("Kund-0042", "Kund-0042"),  # a customer number keeps its case
        (" 42 ", "42"),
        ("A\u030angström@example.se", "ångström@example.se"),  # NFC: one spelling of the same letters
    ],
)
def test_an_identifier_is_normalised_before_it_is_digested(given, normalised):
    assert normalise_subject(given) == normalised
    key = SubjectKey(b"k" * 32)
    assert key.digest(given) == hmac.new(b"k" * 32, normalised.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("bad", ["", "   ", "x" * 321, "a\nb@example.se", "a\x00b", "a\u2028b", "a\u200bb", "\x7f"])
def test_an_identifier_that_names_no_one_is_refused(bad):
    with pytest.raises(SubjectError):
        normalise_subject(bad)


def test_two_keys_give_unrelated_digests_and_no_repr_shows_a_key():
    first, second = SubjectKey(b"a" * 32), SubjectKey(b"b" * 32)
    assert first.digest("anna@example.se") != second.digest("anna@example.se")
    assert "a" * 16 not in repr(first)
    with pytest.raises(ValueError):
        SubjectKey(b"short")


def test_the_key_file_is_created_once_with_mode_0600_and_read_back(tmp_path):
    path = tmp_path / "keys" / "subject.key"
    created = load_or_create_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key_file(path) == created and len(created) == 32
    path.write_text("not hex\n")
    with pytest.raises(ValueError, match="hex"):
        load_or_create_key_file(path)


def test_the_configured_key_wins_over_the_file_and_a_bad_one_is_refused_without_showing_it(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, subject_key="s" * 20)
    assert subject_key_for(settings).digest("x@y.z") == SubjectKey(b"s" * 20).digest("x@y.z")
    assert not (tmp_path / "subject.key").exists()
    assert "s" * 20 not in repr(settings)
    monkeypatch.setenv("REGISTRY_SUBJECT_KEY", "too-short")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    assert "REGISTRY_SUBJECT_KEY" in str(refused.value) and "too-short" not in str(refused.value)


def test_a_request_naming_a_person_in_clear_is_never_logged():
    request = ShareRequest("kvarnberg", "marketing", ("user.name",), subject_ref="anna@example.se")
    with pytest.raises(ValueError, match="pseudonymised"):
        logged_request(request)
    (digested,) = pseudonymised([request], SubjectKey(b"k" * 32))
    logged = logged_request(digested, "00" * 16)
    digest = SubjectKey(b"k" * 32).digest("anna@example.se")
    assert digest not in str(logged)
    assert logged["subject_ref_commitment"] == subject_commitment(digest, "00" * 16)


def test_a_commitment_links_to_no_one_without_its_salt():
    digest = SubjectKey(b"k" * 32).digest("anna@example.se")
    first, second = new_salt(), new_salt()
    assert first != second
    assert subject_commitment(digest, first) != subject_commitment(digest, second)


def test_the_access_log_never_shows_a_persons_identifier():
    scope = {"path": "/api/subjects/recipients", "root_path": "", "query_string": b"subject=anna%40example.se&x=1"}
    assert redacted_path_with_query(scope) == "/api/subjects/recipients?subject=[redacted]&x=1"  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["%73ubject", "SUBJ%45CT", "%73%75%62%6a%65%63%74"])
def test_a_subject_query_name_spelled_with_percent_escapes_is_redacted_too(name):
    """Issue 33, finding 10: `%73ubject` reached the app as `subject` but the access log kept its value in clear."""
    scope = {"path": "/api/subjects/recipients", "query_string": f"{name}=anna%40example.se".encode()}
    assert redacted_path_with_query(scope) == f"/api/subjects/recipients?{name}=[redacted]"  # type: ignore[arg-type]
