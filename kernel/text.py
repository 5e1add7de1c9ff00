"""Text PostgreSQL can store: shared by the registry's schemas and the guard's request body."""

from typing import Any


def no_nul_characters(value: Any) -> Any:
    """PostgreSQL cannot store NUL in text: refuse it here, on its field, rather than fail on the write."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value
