"""JSON Merge Patch (RFC 7396) of a party or an agreement, with the version it is based on.

The patch is applied to the record as GET answers it; the result is then validated and written as a PUT of
the whole record would be (the service's update), so every rule of a full write holds for a patch as well.
"""

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from kernel.errors import ConflictError, FieldError, RegistryValidationError
from registry.services.registry_document import pydantic_field_errors

MERGE_PATCH_MEDIA_TYPE = "application/merge-patch+json"
# What GET answers but nobody writes: accepted in a patch when unchanged (a client may patch with what it
# read), refused when changed. The version is the patch's base, not a field to set.
READ_ONLY_FIELDS = ("key", "created_at", "updated_at")

Model = TypeVar("Model", bound=BaseModel)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 §2: an object patch merges member by member (null removes one); anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


MAX_PATCH_DEPTH = 32  # far deeper than any record of the registry


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded JSON value (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_PATCH_DEPTH:
                return depth
            stack.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return deepest


def decode_merge_patch(body: bytes) -> dict[str, Any]:
    """The patch document of a request body: a JSON object, or a 400 saying what it is instead."""
    try:
        patch = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # (msgspec checks UTF-8 in strings as it decodes)
        raise RegistryValidationError([FieldError("(body)", f"the body is not valid JSON: {exc}")]) from None
    except RecursionError:
        raise RegistryValidationError([FieldError("(body)", "the body is nested too deeply")]) from None
    if _depth(patch) > MAX_PATCH_DEPTH:
        # Merging walks the patch recursively: a deep one would exhaust the stack there.
        raise RegistryValidationError(
            [FieldError("(body)", f"the body is nested more than {MAX_PATCH_DEPTH} levels deep")]
        )
    if not isinstance(patch, dict):
        raise RegistryValidationError(
            [FieldError("(body)", "a merge patch is a JSON object of the fields to change (null removes one)")]
        )
    return patch


def _same(name: str, sent: Any, current: Any) -> bool:
    if name in ("created_at", "updated_at") and isinstance(sent, str) and isinstance(current, datetime):
        try:
            return datetime.fromisoformat(sent) == current  # any ISO 8601 spelling of the same moment
        except ValueError:
            return False
    return bool(sent == current)


def patched(what: str, key: str, current: dict[str, Any], patch: dict[str, Any], model: type[Model]) -> Model:
    """`current` (as the service's `get` answers it) with `patch` applied, validated as `model` (the PUT body).

    400 naming every problem at once (the version missing, a read-only field changed, each invalid field by
    its path); 409 when the patch is based on another version than the current one."""
    errors: list[FieldError] = []
    version = patch.get("version")
    if version is None:
        errors.append(FieldError("version", "required: the version the patch is based on (as GET answered it)"))
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        errors.append(FieldError("version", f"must be a whole number from 1, not {version!r}"))
    for name in READ_ONLY_FIELDS:
        if name in patch and not _same(name, patch[name], current.get(name)):
            errors.append(FieldError(name, f"{name} is read-only: leave it out or send it unchanged"))
    if errors:
        raise RegistryValidationError(errors)
    if version != current["version"]:
        raise ConflictError(
            f"{what} {key!r} was changed by someone else (your version {version}, current {current['version']}); "
            "reload it and apply your change again",
            current_version=current["version"],
        )
    writable = {name: value for name, value in current.items() if name not in (*READ_ONLY_FIELDS, "version")}
    changes = {name: value for name, value in patch.items() if name not in (*READ_ONLY_FIELDS, "version")}
    document = merge_patch(msgspec.to_builtins(writable), changes)
    try:
        return model.model_validate({**document, "version": version})
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None
