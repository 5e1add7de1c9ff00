"""A reminder's e-mail is built whatever the registry's names hold."""

import pytest

from registry.jobs.delivery import ReminderMessage, email_message


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\n", "\r\n", "\x0b", "\x0c"])
def test_a_party_name_with_a_line_break_of_any_kind_still_makes_a_sendable_reminder(separator: str) -> None:
    message = ReminderMessage(
        reminder_id=7,
        subject=f"Agreement a-dpa with Bad{separator}Name AB expires on 2027-01-31",
        body="The agreement expires.",
        payload={},
    )
    email = email_message(message, "registry@offix.example", "legal@offix.example")
    assert email["Subject"] == "Agreement a-dpa with Bad Name AB expires on 2027-01-31"
    assert "Bad Name AB" in email.as_string()
