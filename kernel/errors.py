"""Domain errors raised by services; the app maps them to HTTP answers (web/app.py)."""

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `field` is a path such as `parties[3].sub_processors[0].party`."""

    field: str
    message: str
    # What kind of problem, for readers that word it themselves (the UI, in the reader's language): pydantic's
    # error type (`missing`, `string_too_long`, ...) or the registry's own (`territory_code`, `unknown_party`).
    code: str = ""
    params: dict[str, Any] = dataclass_field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, str]:
        return {"key": self.field, "message": self.message}


def pydantic_field_errors(exc: ValidationError) -> list[FieldError]:
    """`('parties', 3, 'locations', 0, 'territory')` → `parties[3].locations[0].territory`."""
    errors = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = err["msg"].removeprefix("Value error, ")
        errors.append(FieldError(path or "(document)", message, err["type"], dict(err.get("ctx") or {})))
    return errors


class RegistryError(Exception):
    """Base for errors a caller can act on."""


class RegistryValidationError(RegistryError):
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} validation error(s): {summary}{more}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in the report worker process, it comes back pickled: rebuilt from its errors, not its message.
        return (type(self), (self.errors,))


class NotFoundError(RegistryError):
    pass


class ConflictError(RegistryError):
    """A write based on a stale version, or one that clashes with existing data (duplicate key)."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        self.current_version = current_version
        super().__init__(message)
