"""Renewal reminder tables (owned by the reminders work; see registry/jobs/)."""
