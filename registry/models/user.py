"""Web UI users and sessions (owned by the UI work; see registry/ui/)."""
