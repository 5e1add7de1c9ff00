"""Scheduled jobs: renewal reminders, the renewals list and the renewals calendar feed (their HTTP edge and
scheduling live in web/)."""
