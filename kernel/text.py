"""Text PostgreSQL can store, and the shape of an e-mail address: shared by the registry's schemas, the guard's
request body and the settings."""

import re
from typing import Any

# An e-mail address as the registry accepts one: a local part, one @, a domain with a dot; no spaces.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def no_nul_characters(value: Any) -> Any:
    """PostgreSQL cannot store NUL in text: refuse it here, on its field, rather than fail on the write."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value
