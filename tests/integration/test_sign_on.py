"""Single sign-on with OpenID Connect, end to end against a real OpenID provider (oidc-provider-mock, a Flask
app built on Authlib's server, listening on 127.0.0.1 in a thread): the login button, the provider's sign-in
form, the code exchanged, the ID token verified against the provider's JWKS, the role read from a claim. The
provider is wrapped in a small WSGI layer that records what the registry sent it and, for the refusal tests,
makes it misbehave as a mixed-up or hostile provider would (another issuer name, another audience)."""

import base64
import hashlib
import io
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import oidc_provider_mock
import pytest
import werkzeug.serving
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from kernel.db import make_engine
from tests.conftest import test_settings
from tests.ui_session import csrf_token
from tests.ui_session import log_in as password_log_in
from web.app import create_app

CLIENT_ID = "offix-registry"
CLIENT_SECRET = "registry-client-secret"
PUBLIC_URL = "http://testserver.local"
USERS = [
    oidc_provider_mock.User(sub="lena", claims={"email": "lena@offix.example", "roles": ["legal"]}),
    oidc_provider_mock.User(sub="ada", claims={"email": "ada@offix.example", "roles": ["admin", "ops"]}),
    oidc_provider_mock.User(sub="olle", claims={"email": "olle@offix.example", "roles": ["Registry.Ops"]}),
    oidc_provider_mock.User(sub="nils", claims={"email": "nils@offix.example", "roles": ["Marketing"]}),
]


@dataclass
class Provider:
    """The running provider, what it was sent, and the misbehaviour asked of it."""

    issuer: str
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issuer_host: str | None = None  # sign ID tokens under this host's name
    audience: str | None = None  # issue ID tokens to this client instead

    def reset(self) -> None:
        self.authorize_requests.clear()
        self.token_requests.clear()
        self.issuer_host = self.audience = None


class Recording:
    """WSGI layer in front of the provider."""

    def __init__(self, app: Any, provider: Provider) -> None:
        self.app, self.provider = app, provider

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        provider = self.provider
        if environ["PATH_INFO"] == "/oauth2/authorize":
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            provider.authorize_requests.append(query)
            if provider.audience:
                environ["QUERY_STRING"] = urlencode({**query, "client_id": provider.audience})
        elif environ["PATH_INFO"] == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form = dict(parse_qsl(body.decode()))
            provider.token_requests.append(form)
            if provider.audience:
                form["client_id"] = provider.audience
                basic = base64.b64encode(f"{provider.audience}:{CLIENT_SECRET}".encode()).decode()
                environ["HTTP_AUTHORIZATION"] = f"Basic {basic}"
                body = urlencode(form).encode()
            if provider.issuer_host:
                environ["HTTP_HOST"] = provider.issuer_host
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    app = oidc_provider_mock.app(user_claims=USERS, require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    state = Provider(issuer=f"http://127.0.0.1:{server.server_port}")
    server.app = Recording(app, state)  # type: ignore[assignment]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def sign_on_app(url: str, provider: Provider, **overrides: Any) -> Litestar:
    provider.reset()
    settings: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_role_map": (("legal", "legal"), ("ops", "ops"), ("admin", "admin"), ("Registry.Ops", "ops")),
    }
    return create_app(test_settings(url, **{**settings, **overrides}))


@pytest.fixture
async def browser(database: str, provider: Provider) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(sign_on_app(database, provider), base_url=PUBLIC_URL) as client:
        yield client


async def press_the_button(client: AsyncTestClient[Litestar], next_page: str = "/ui/") -> str:
    """The login page's button: the registry's answer sends the browser to the provider."""
    started = await client.get("/ui/login/oidc", params={"next": next_page}, follow_redirects=False)
    assert started.status_code == 303, started.text
    return started.headers["location"]


async def sign_in_at_provider(authorize_url: str, subject: str, **tamper: str) -> str:
    """The provider's sign-in form, answered as `subject`; returns where the provider sends the browser back.
    `tamper` overrides parameters of the authorization request, as a hostile page could."""
    if tamper:
        parts = urlsplit(authorize_url)
        authorize_url = urlunsplit(parts._replace(query=urlencode({**dict(parse_qsl(parts.query)), **tamper})))
    async with httpx.AsyncClient() as idp:
        answer = await idp.post(authorize_url, data={"sub": subject}, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def come_back(client: AsyncTestClient[Litestar], callback: str, **tamper: str) -> Any:
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL and parts.path == "/ui/login/oidc/callback"
    query = {**dict(parse_qsl(parts.query)), **tamper}
    return await client.get(parts.path, params=query, follow_redirects=False)


async def sign_on(client: AsyncTestClient[Litestar], subject: str, next_page: str = "/ui/") -> Any:
    return await come_back(client, await sign_in_at_provider(await press_the_button(client, next_page), subject))


async def signed_in_as(client: AsyncTestClient[Litestar]) -> str | None:
    page = await client.get("/ui/account/password", follow_redirects=False)
    return None if page.status_code != 200 else page.text


async def user_row(url: str, email: str) -> tuple[str, str] | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT role, password_hash FROM ui_user WHERE email = :email"), {"email": email}
                )
            ).first()
    finally:
        await engine.dispose()
    return None if row is None else (row[0], row[1])


async def test_the_login_page_offers_single_sign_on_beside_the_password_form(browser: Any) -> None:
    page = await browser.get("/ui/login")
    assert 'href="/ui/login/oidc"' in page.text
    assert 'name="password"' in page.text


async def test_a_user_with_a_role_signs_in_through_the_provider_and_lands_on_the_page_asked_for(
    browser: Any, provider: Provider, database: str
) -> None:
    callback = await sign_in_at_provider(await press_the_button(browser, "/ui/parties"), "lena")
    answer = await come_back(browser, callback)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/parties"
    assert "lena@offix.example" in (await browser.get("/ui/parties")).text
    # A legal user may write: the new-party form is theirs.
    assert (await browser.get("/ui/parties/new")).status_code == 200
    assert await user_row(database, "lena@offix.example") == ("legal", "!sign-on")
    # The flow's cookie is spent: the same callback again is refused.
    again = await come_back(browser, callback)
    assert again.status_code == 400


async def test_the_authorization_request_carries_pkce_state_and_nonce_and_the_token_request_the_verifier(
    browser: Any, provider: Provider
) -> None:
    assert (await sign_on(browser, "lena")).status_code == 303
    [authorize] = provider.authorize_requests[:1]
    assert authorize["response_type"] == "code" and authorize["client_id"] == CLIENT_ID
    assert authorize["code_challenge_method"] == "S256"
    assert len(authorize["state"]) >= 32 and len(authorize["nonce"]) >= 32
    assert authorize["redirect_uri"] == PUBLIC_URL + "/ui/login/oidc/callback"
    [token] = provider.token_requests
    challenge = base64.urlsafe_b64encode(hashlib.sha256(token["code_verifier"].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == authorize["code_challenge"]
    assert token["grant_type"] == "authorization_code"


async def test_a_claim_value_is_mapped_to_a_role_and_admin_wins_over_a_second_role(browser: Any, database: str) -> None:
    assert (await sign_on(browser, "olle")).status_code == 303
    assert (await user_row(database, "olle@offix.example") or ("",))[0] == "ops"
    assert (await browser.get("/ui/parties/new")).status_code == 403, "ops may not write"
    browser.cookies.clear()
    assert (await sign_on(browser, "ada")).status_code == 303
    assert (await user_row(database, "ada@offix.example") or ("",))[0] == "admin"
    assert (await browser.get("/ui/admin")).status_code == 200


async def test_a_user_whose_claim_maps_to_no_role_is_refused_with_a_page_in_their_language(
    browser: Any, database: str
) -> None:
    english = await sign_on(browser, "nils")
    assert english.status_code == 403
    assert "gives you no role in the registry" in english.text and "no_role" in english.text
    assert await user_row(database, "nils@offix.example") is None, "nobody is created"
    assert "registry_session" not in english.headers.get("set-cookie", "")
    browser.cookies.clear()
    browser.cookies.set("registry_lang", "sv")
    browser.headers["Accept-Language"] = "sv-SE,sv;q=0.9"
    swedish = await sign_on(browser, "nils")
    assert swedish.status_code == 403
    assert '<html lang="sv">' in swedish.text
    assert "ingen roll i registret" in swedish.text


async def test_a_callback_whose_state_is_not_this_browsers_is_refused(browser: Any, database: str) -> None:
    callback = await sign_in_at_provider(await press_the_button(browser), "lena")
    forged = await come_back(browser, callback, state="forged-state")
    assert forged.status_code == 400
    assert "could not be matched to this browser" in forged.text
    assert await user_row(database, "lena@offix.example") is None


async def test_a_callback_in_another_browser_than_the_one_that_started_is_refused(
    browser: Any, provider: Provider, database: str
) -> None:
    callback = await sign_in_at_provider(await press_the_button(browser), "lena")
    async with AsyncTestClient(sign_on_app(database, provider), base_url=PUBLIC_URL) as other_browser:
        answer = await come_back(other_browser, callback)
    assert answer.status_code == 400
    assert "could not be matched to this browser" in answer.text


async def test_an_id_token_with_another_nonce_is_refused(browser: Any, database: str) -> None:
    callback = await sign_in_at_provider(await press_the_button(browser), "lena", nonce="replayed-nonce")
    answer = await come_back(browser, callback)
    assert answer.status_code == 400
    assert "could not be verified" in answer.text and "nonce_mismatch" in answer.text
    assert await user_row(database, "lena@offix.example") is None


async def test_an_id_token_from_another_issuer_is_refused(browser: Any, provider: Provider, database: str) -> None:
    callback = await sign_in_at_provider(await press_the_button(browser), "lena")
    # The same provider under another name: its ID token says iss http://localhost:<port>, not the configured one.
    provider.issuer_host = "localhost:" + provider.issuer.rsplit(":", 1)[1]
    answer = await come_back(browser, callback)
    assert answer.status_code == 400
    assert "wrong_issuer" in answer.text
    assert await user_row(database, "lena@offix.example") is None


async def test_an_id_token_issued_to_another_client_is_refused(browser: Any, provider: Provider, database: str) -> None:
    provider.audience = "some-other-client"
    answer = await sign_on(browser, "lena")
    assert provider.token_requests, "the code was exchanged"
    assert answer.status_code == 400
    assert "wrong_audience" in answer.text
    assert await user_row(database, "lena@offix.example") is None


async def test_a_provider_that_cannot_be_reached_is_a_clear_page_not_a_500(database: str, provider: Provider) -> None:
    app = sign_on_app(database, provider, oidc_issuer="http://127.0.0.1:9")
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as client:
        answer = await client.get("/ui/login/oidc", follow_redirects=False)
    assert answer.status_code == 502
    assert "could not be reached" in answer.text


async def test_the_provider_sets_the_role_on_each_sign_in_and_a_disabled_account_stays_shut(
    browser: Any, provider: Provider, database: str
) -> None:
    assert (await sign_on(browser, "olle")).status_code == 303
    engine = make_engine(database, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE ui_user SET role = 'legal' WHERE email = 'olle@offix.example'"))
    finally:
        await engine.dispose()
    browser.cookies.clear()
    assert (await sign_on(browser, "olle")).status_code == 303
    assert (await user_row(database, "olle@offix.example") or ("",))[0] == "ops"
    engine = make_engine(database, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE ui_user SET active = false WHERE email = 'olle@offix.example'"))
    finally:
        await engine.dispose()
    browser.cookies.clear()
    refused = await sign_on(browser, "olle")
    assert refused.status_code == 403 and "disabled" in refused.text


async def test_with_local_passwords_off_the_form_is_gone_and_a_posted_password_is_refused(
    database: str, provider: Provider
) -> None:
    app = sign_on_app(database, provider, local_passwords=False)
    async with AsyncTestClient(app, base_url=PUBLIC_URL) as client:
        page = await client.get("/ui/login")
        assert 'href="/ui/login/oidc"' in page.text and 'name="password"' not in page.text
        posted = await password_log_in(client, "lena@offix.example", "correct horse battery")
        assert posted.status_code == 403
        assert "switched off" in posted.text
        assert csrf_token(page.text)
