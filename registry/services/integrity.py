"""Rules that span entities: references resolve, sub-processor links point at sub-processors, no cycles,
agreement kinds fit their party's role. Pure functions over keys, shared by single writes and imports."""

from collections.abc import Iterable, Mapping, Sequence

from kernel.errors import FieldError
from registry.schemas import ROLE_FOR_AGREEMENT_KIND


def sub_processor_link_errors(
    path: str, processor_key: str, targets: Sequence[str], roles: Mapping[str, str]
) -> list[FieldError]:
    errors = []
    for i, target in enumerate(targets):
        field = f"{path}.sub_processors[{i}].party"
        if target == processor_key:
            errors.append(FieldError(field, "a party cannot be its own sub-processor"))
        elif target not in roles:
            errors.append(FieldError(field, f"no party with key {target!r}", "unknown_party", {"key": target}))
        elif roles[target] != "sub_processor":
            errors.append(
                FieldError(field, f"{target!r} has role {roles[target]}; only sub_processor parties can be linked")
            )
    return errors


def find_cycle(links: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """A sub-processor chain that leads back to `start`, as the list of keys, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in links.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def cycle_error(path: str, links: Mapping[str, Iterable[str]], key: str) -> FieldError | None:
    cycle = find_cycle(links, key)
    if cycle is None:
        return None
    return FieldError(f"{path}.sub_processors", "sub-processor links form a cycle: " + " → ".join(cycle))


def agreement_party_errors(path: str, kind: str, party_key: str, roles: Mapping[str, str]) -> list[FieldError]:
    role = roles.get(party_key)
    if role is None:
        return [FieldError(f"{path}.party", f"no party with key {party_key!r}", "unknown_party", {"key": party_key})]
    allowed = ROLE_FOR_AGREEMENT_KIND[kind]
    if role not in allowed:
        return [
            FieldError(
                f"{path}.kind",
                f"a {kind} agreement needs a party with role {' or '.join(allowed)}; {party_key!r} is {role}",
            )
        ]
    return []


def role_change_errors(
    path: str, key: str, new_role: str, agreement_kinds: Iterable[str], linked_from: Iterable[str]
) -> list[FieldError]:
    """A role change must keep the party's existing agreements and incoming links valid."""
    errors = []
    for kind in sorted(set(agreement_kinds)):
        if new_role not in ROLE_FOR_AGREEMENT_KIND[kind]:
            errors.append(FieldError(f"{path}.role", f"{key!r} has a {kind} agreement, which a {new_role} cannot hold"))
    parents = sorted(set(linked_from))
    if parents and new_role != "sub_processor":
        errors.append(
            FieldError(
                f"{path}.role",
                f"{key!r} is a sub-processor of {', '.join(parents)}; its role must stay sub_processor",
            )
        )
    return errors


def duplicate_key_errors(path: str, keys: Sequence[str]) -> list[FieldError]:
    seen: dict[str, int] = {}
    errors = []
    for i, key in enumerate(keys):
        if key in seen:
            errors.append(FieldError(f"{path}[{i}].key", f"duplicate key {key!r} (also at {path}[{seen[key]}])"))
        else:
            seen[key] = i
    return errors
