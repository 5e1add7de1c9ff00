"""A reminder's e-mail is built whatever line breaks the registry's names hold, and never lets a header in."""

import pytest

from registry.jobs.delivery import ReminderMessage, email_message
from registry.schemas import PartyIn


def _message(name: str) -> ReminderMessage:
    return ReminderMessage(
        reminder_id=7, subject=f"Agreement a-dpa with {name} expires on 2027-01-31", body="It expires.", payload={}
    )


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_a_party_name_with_a_unicode_line_break_still_makes_a_sendable_reminder(separator: str) -> None:
    # Issue 33, finding 10: a U+2028 in a name made the e-mail library refuse the subject on every retry.
    email = email_message(_message(f"Bad{separator}Name AB"), "registry@offix.example", "legal@offix.example")
    assert email["Subject"] == "Agreement a-dpa with Bad Name AB expires on 2027-01-31"
    assert "Bad Name AB" in email.as_string()


@pytest.mark.parametrize("separator", ["\r\n", "\n", "\r"])
def test_a_name_smuggling_a_header_in_with_cr_or_lf_is_never_put_into_an_e_mail(separator: str) -> None:
    with pytest.raises(ValueError):
        email_message(_message(f"Klarsignal{separator}Bcc: x@evil.example"), "r@offix.example", "l@offix.example")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
def test_a_new_party_name_with_a_unicode_line_separator_is_refused_on_its_field(separator: str) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        PartyIn.model_validate(
            {"key": "bad", "name": f"Bad{separator}Name AB", "role": "processor", "category": "it_services"}
        )
