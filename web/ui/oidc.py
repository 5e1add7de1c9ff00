"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, as a confidential client.

Authlib builds the protocol's messages (the authorization address, the PKCE challenge) and checks the ID
token's claims (issuer, audience, expiry, nonce); joserfc, Authlib's JOSE library, verifies its signature
against the issuer's published keys (JWKS). This module knows the protocol, not the registry: it answers a
verified ID token's claims, and the role they give (`role_from_claims`); registry/services/users.py signs the
user in.

The flow's secrets (state, nonce, PKCE verifier, the page to return to) travel in a short-lived cookie that
is encrypted and authenticated under a key derived from the UI's session secret (JWE, `dir` + A256GCM): a
callback with a state that is not this browser's, or a flow older than FLOW_LIFETIME, is refused."""

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from kernel.settings import OIDC_ROLES, Settings

log = logging.getLogger(__name__)

FLOW_COOKIE = "registry_oidc"
FLOW_COOKIE_PATH = "/ui/login/oidc"
CALLBACK_PATH = "/ui/login/oidc/callback"
FLOW_LIFETIME = 600  # seconds from the login button to the callback
SCOPE = "openid email profile"
# Seconds of clock difference between the issuer and this server tolerated on exp/iat.
CLOCK_LEEWAY = 60
FLOW_ALGORITHMS = ["dir", "A256GCM"]
# The provider's answers are read within this long; an issuer that does not answer is a refused sign-in.
HTTP_TIMEOUT = httpx.Timeout(10.0)
# Signature algorithms accepted on an ID token ("none" and symmetric ones never: the key is the issuer's).
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class SignOnError(Exception):
    """A sign-in the registry refuses. `reason` is a stable code for the log; the page shows its words."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Flow:
    """One sign-in under way, from the login button to the callback."""

    state: str
    nonce: str
    verifier: str
    next: str
    expires: int = field(default_factory=lambda: int(time.time()) + FLOW_LIFETIME)


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def _flow_key(secret: str) -> OctKey:
    digest = hmac.new(secret.encode(), b"oidc-flow-cookie", hashlib.sha256).digest()
    return OctKey.import_key(digest)


def seal_flow(flow: Flow, secret: str) -> str:
    payload = jwt.encode(
        {"alg": "dir", "enc": "A256GCM"},
        {"state": flow.state, "nonce": flow.nonce, "verifier": flow.verifier, "next": flow.next, "exp": flow.expires},
        _flow_key(secret),
        algorithms=FLOW_ALGORITHMS,
        registry=jwe.JWERegistry(algorithms=FLOW_ALGORITHMS),
    )
    return payload


def open_flow(value: str | None, secret: str, *, now: float | None = None) -> Flow | None:
    """The flow the cookie holds, or None when it is missing, forged, damaged or expired."""
    if not value or len(value) > 2000:
        return None
    try:
        token = jwt.decode(
            value, _flow_key(secret), algorithms=FLOW_ALGORITHMS, registry=jwe.JWERegistry(algorithms=FLOW_ALGORITHMS)
        )
        claims = token.claims
        flow = Flow(
            state=str(claims["state"]),
            nonce=str(claims["nonce"]),
            verifier=str(claims["verifier"]),
            next=str(claims["next"]),
            expires=int(claims["exp"]),
        )
    except (JoseError, KeyError, TypeError, ValueError):
        return None
    return flow if flow.expires > (now if now is not None else time.time()) else None


def role_from_claims(claims: dict[str, Any], claim: str, role_map: tuple[tuple[str, str], ...]) -> str | None:
    """The registry role the claim gives (a string or a list of strings, Entra ID's `roles` being a list), or
    None. With several, the first of admin, legal, ops: an admin mapping is deliberate."""
    raw = claims.get(claim)
    values = [raw] if isinstance(raw, str) else [v for v in raw if isinstance(v, str)] if isinstance(raw, list) else []
    mapping = dict(role_map) if role_map else {role: role for role in OIDC_ROLES}
    roles = {mapping[v] for v in values if v in mapping}
    return next((role for role in ("admin", "legal", "ops") if role in roles), None)


def email_from_claims(claims: dict[str, Any]) -> str | None:
    """The user's e-mail address: `email` (unless the issuer says it is unverified), else Entra ID's
    `preferred_username` when it is an address."""
    email = claims.get("email")
    if isinstance(email, str) and "@" in email and claims.get("email_verified") is not False:
        return email
    username = claims.get("preferred_username")
    return username if isinstance(username, str) and "@" in username else None


class OidcClient:
    """The registry's client at one issuer. The issuer's metadata is read on the first sign-in (not at start:
    a provider down at start must not stop the registry) and kept; its keys are read again when a token names
    a key the registry does not have (the issuer rotated its keys)."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer is not None and settings.oidc_client_id is not None
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        self.redirect_uri = settings.public_url + CALLBACK_PATH
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignOnError("provider_unreachable", f"{url}: {exc}") from None
        if not isinstance(body, dict):
            raise SignOnError("provider_unreachable", f"{url} did not answer a JSON object")
        return body

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            body = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            # OpenID Connect Discovery 1.0, 4.3: the document's issuer must be the one asked.
            if str(body.get("issuer", "")).rstrip("/") != self.issuer:
                raise SignOnError("wrong_issuer", f"the discovery document names issuer {body.get('issuer')!r}")
            try:
                self._metadata = ProviderMetadata(
                    issuer=str(body["issuer"]),
                    authorization_endpoint=str(body["authorization_endpoint"]),
                    token_endpoint=str(body["token_endpoint"]),
                    jwks_uri=str(body["jwks_uri"]),
                )
            except KeyError as exc:
                raise SignOnError("provider_unreachable", f"the discovery document lacks {exc}") from None
        return self._metadata

    async def start(self, next_page: str) -> tuple[str, Flow]:
        """The issuer's authorization address to send the browser to, and the flow to keep in its cookie."""
        metadata = await self.metadata()
        flow = Flow(state=generate_token(32), nonce=generate_token(32), verifier=generate_token(64), next=next_page)
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
        )
        return url, flow

    async def finish(self, flow: Flow | None, query: dict[str, str]) -> dict[str, Any]:
        """The verified ID token's claims for the callback's query, or SignOnError."""
        if flow is None:
            raise SignOnError("no_flow", "no sign-in was started in this browser, or it took too long")
        if not hmac.compare_digest(query.get("state", ""), flow.state):
            raise SignOnError("state_mismatch", "the callback's state is not the one this browser was sent with")
        if "error" in query:
            raise SignOnError("provider_refused", f"{query['error']}: {query.get('error_description', '')}"[:300])
        code = query.get("code")
        if not code:
            raise SignOnError("no_code", "the callback carries no authorization code")
        metadata = await self.metadata()
        id_token = await self._exchange(metadata, code, flow.verifier)
        return await self._verify(metadata, id_token, flow.nonce)

    async def _exchange(self, metadata: ProviderMetadata, code: str, verifier: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "client_id": self.client_id,
        }
        # client_secret_basic when the client has a secret (RFC 6749 2.3.1), a public client otherwise.
        auth: Any = httpx.USE_CLIENT_DEFAULT
        if self.client_secret:
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
        try:
            response = await self._http.post(
                metadata.token_endpoint, data=form, auth=auth, headers={"accept": "application/json"}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignOnError("provider_unreachable", f"token endpoint: {exc}") from None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise SignOnError("token_refused", f"the token endpoint answered {response.status_code} {error or ''}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SignOnError("no_id_token", "the token endpoint's answer holds no ID token")
        return id_token

    async def _key_set(self, metadata: ProviderMetadata, *, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            body = await self._get_json(metadata.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise SignOnError("provider_unreachable", f"the issuer's keys cannot be read: {exc}") from None
        return self._keys

    async def _verify(self, metadata: ProviderMetadata, id_token: str, nonce: str) -> dict[str, Any]:
        keys = await self._key_set(metadata, refresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except (JoseError, ValueError) as exc:
                if "key" not in str(exc).lower():
                    raise
                # A key this registry has not seen: the issuer may have rotated its keys; read them once more.
                fresh = await self._key_set(metadata, refresh=True)
                token = jwt.decode(id_token, fresh, algorithms=ID_TOKEN_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise SignOnError("bad_signature", f"the ID token's signature does not verify: {exc}") from None
        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
            },
            params={"nonce": nonce, "client_id": self.client_id},
        )
        try:
            claims.validate(leeway=CLOCK_LEEWAY)
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or str(exc)
            reason = {"iss": "wrong_issuer", "aud": "wrong_audience", "nonce": "nonce_mismatch"}.get(
                str(claim), "invalid_id_token"
            )
            raise SignOnError(reason, f"the ID token's {claim} claim is not right: {exc}") from None
        return dict(claims)
