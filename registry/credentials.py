"""API keys and who is calling: the registry's own vocabulary of credentials, used by its services (key and
user management, calendar feeds) and by the web edge that authenticates requests."""

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "ofx_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's name or a signed-in user's e-mail, with what they may do."""

    name: str
    scopes: frozenset[str]
    kind: str = "api_key"
    language: str | None = None  # a signed-in user's remembered UI language

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
