"""Defaults the guard's rules and the settings share, in a module that imports nothing, so that reading the
settings (every CLI command does) never loads the policy and its taxonomy."""

# An agreement that lapses within this many days makes an allowed share carry a warning (the setting
# REGISTRY_EXPIRING_WARNING_DAYS overrides it; the web UI's "expiring" badge uses the same window).
DEFAULT_EXPIRING_WITHIN_DAYS = 30
