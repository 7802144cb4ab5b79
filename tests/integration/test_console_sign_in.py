"""The console's sign-in with the person's identity provider, against a real Keycloak: password and TOTP at
the provider, then a console session for the person the directory names, in their role. Refused, each with
a page saying why and an audit record: an answer for another sign-in (state), a code used twice, a sign-in
without a second factor, an account the directory does not know, a role the provider's groups do not grant,
a provider that cannot be reached."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.web.events import AccessAudited
from services.web.sso import SIGN_IN_COOKIE
from tests.identity import PASSWORD, ProviderSignIn, totp_code

pytestmark = pytest.mark.integration
BASE = "http://127.0.0.1:8080"  # the console's public address: the provider sends people back to it


@pytest.fixture
def console(memory_settings, keycloak_issuer, monkeypatch):
    monkeypatch.setenv("HANDOFF_OIDC_SECRET_KEYCLOAK_LOCAL", "local-dev-console-secret")
    reference = load_reference_data(REPO_ROOT / "config" / "local")
    provider = reference.identity_providers["keycloak-local"].model_copy(update={"issuer": keycloak_issuer})
    reference = reference.model_copy(update={"identity_providers": {"keycloak-local": provider}})
    publisher = InMemoryPublisher()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": BASE})
    app = runtime.build_http_app(settings, reference, publisher, follow_topics=False)
    app.state.publisher = publisher
    return app


async def at_provider(start: httpx.Response, user: str, otp: bool = True) -> str:
    """The person at the provider's pages; the path and query the provider sends them back to."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as http:
        person = ProviderSignIn(http, {})
        login = await person.get(start.headers["location"])
        page = await person.submit(login, username=user, password=PASSWORD)
        if otp:
            page = await person.submit(page, otp=await totp_code(user))
        location = page.headers["location"]
        assert location.startswith(f"{BASE}/console/signed-in?"), (page.status_code, location[:80])
        parsed = urlparse(location)
        return f"{parsed.path}?{parsed.query}"


def audited(app) -> list[tuple[str, bool, str | None, str | None]]:
    return [(a.event_type.value, a.success, a.user_id, a.reason) for a in app.state.publisher.events(AccessAudited)]


async def test_a_person_signs_in_at_their_provider_with_totp_and_lands_in_their_role(console) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c:
        login = await c.get("/console/login")
        assert 'href="/console/sign-in/keycloak-local"' in login.text
        start = await c.get("/console/sign-in/keycloak-local")
        assert start.status_code == 303 and "code_challenge_method=S256" in start.headers["location"]
        kept = c.cookies[SIGN_IN_COOKIE]
        back = await at_provider(start, "coord-abq")
        done = await c.get(back)
        assert done.status_code == 200 and "/console" in done.text and "handoff_session" in c.cookies, audited(console)
        assert (await c.get("/console")).headers["location"] == "/console/triage"
        assert (await c.get("/console/triage")).status_code == 200

        c.cookies.set(SIGN_IN_COOKIE, kept, path="/console")  # the same answer again: its code is spent
        again = await c.get(back)
        assert again.status_code == 401 and "refused the code (invalid_grant)" in again.text
        c.cookies.set(SIGN_IN_COOKIE, kept, path="/console")
        forged = await c.get(back.replace("state=", "state=x"))
        assert forged.status_code == 401 and "(state)" in forged.text
    assert audited(console)[0] == ("signed_in", True, "abq-ps", "via keycloak-local")
    assert [a[0] for a in audited(console)[1:]] == ["sign_in_refused", "sign_in_refused"]


async def test_signing_in_at_the_provider_from_a_link_lands_on_the_page_the_link_opened(console) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c:
        opened = await c.get("/console/my-referrals?from=page")  # a link's page, signed out
        assert opened.status_code == 401
        assert 'href="/console/sign-in/keycloak-local?next=/console/my-referrals%3Ffrom%3Dpage"' in opened.text
        start = await c.get("/console/sign-in/keycloak-local?next=/console/my-referrals%3Ffrom%3Dpage")
        done = await c.get(await at_provider(start, "cm-ben"))
        assert done.status_code == 200 and 'content="0;url=/console/my-referrals?from=page"' in done.text
        assert (await c.get("/console/my-referrals?from=page")).status_code == 200


async def test_no_second_factor_or_an_account_the_directory_lacks_opens_nothing(console) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c:
        start = await c.get("/console/sign-in/keycloak-local")
        refused = await c.get(await at_provider(start, "no-mfa", otp=False))
        assert refused.status_code == 403 and "second factor" in refused.text
        start = await c.get("/console/sign-in/keycloak-local")
        stranger = await c.get(await at_provider(start, "stranger"))
        assert stranger.status_code == 403 and "your account is not in Handoff" in stranger.text, stranger.text.split("alert")[1][:300]
        assert "handoff_session" not in c.cookies
        assert (await c.get("/console/triage")).status_code == 401
    reasons = [a[3] for a in audited(console)]
    assert all(not a[1] for a in audited(console)) and any("second factor" in r for r in reasons)
    assert any("directory" in r for r in reasons)


async def test_a_role_the_providers_groups_do_not_grant_is_refused(console) -> None:
    """The demo realm's groups are mapped (identity_providers.toml): Ana is a case manager in the directory and in
    the case managers' group. Where the mapping grants that group another role only, her sign-in is refused:
    roles are the directory's, and a mapped provider's groups must grant them too."""
    reference = console.state.sessions.reference
    provider = reference.identity_providers["keycloak-local"]
    assert provider.group_roles["handoff-case-managers"] == "case_manager"
    narrowed = provider.model_copy(update={"group_roles": {"handoff-case-managers": "outreach"}})
    console.state.sessions.reference = reference.model_copy(update={"identity_providers": {"keycloak-local": narrowed}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c:
        start = await c.get("/console/sign-in/keycloak-local")
        refused = await c.get(await at_provider(start, "cm-ana"))
        assert refused.status_code == 403 and "do not grant the role case manager" in refused.text
        assert "handoff_session" not in c.cookies
    [(event, success, user, reason)] = audited(console)
    assert (event, success, user) == ("sign_in_refused", False, "cm-ana") and "do not grant" in reason


async def test_a_provider_that_cannot_be_reached_is_said_so(console) -> None:
    from deploy.local_stack import free_port

    reference = console.state.sessions.reference
    gone = reference.identity_providers["keycloak-local"].model_copy(
        update={"issuer": f"http://127.0.0.1:{free_port()}/realms/handoff"})
    console.state.sessions.reference = reference.model_copy(update={"identity_providers": {"keycloak-local": gone}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c:
        start = await c.get("/console/sign-in/keycloak-local")
    assert start.status_code == 503 and "cannot be reached" in start.text


async def test_signing_out_ends_the_session_at_the_provider_too(console) -> None:
    """Before signing out, the provider's own session signs the person in again without a password; after, it
    asks for the password: signing out of Handoff ended both sessions (OIDC RP-Initiated Logout)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console), base_url=BASE) as c, \
            httpx.AsyncClient(follow_redirects=False, timeout=20) as http:
        person = ProviderSignIn(http, {})

        async def leave_for_the_provider() -> httpx.Response:
            return await person.get((await c.get("/console/sign-in/keycloak-local")).headers["location"])

        login = await leave_for_the_provider()
        page = await person.submit(login, username="cm-cruz", password=PASSWORD)
        page = await person.submit(page, otp=await totp_code("cm-cruz"))
        back = urlparse(page.headers["location"])
        assert (await c.get(f"{back.path}?{back.query}")).status_code == 200, audited(console)
        assert (await c.get("/console/worklist")).status_code == 200
        again = await leave_for_the_provider()  # the provider still knows the person: straight back, no password
        assert again.status_code == 302 and again.headers["location"].startswith(f"{BASE}/console/signed-in?")

        worklist = (await c.get("/console/worklist")).text
        token = worklist.split('name="csrf_token" value="')[1].split('"')[0]
        out = await c.post("/console/logout", data={"csrf_token": token})
        assert out.status_code == 303 and "/protocol/openid-connect/logout?id_token_hint=" in out.headers["location"]
        ended = await person.get(out.headers["location"])
        assert ended.status_code == 302 and ended.headers["location"] == f"{BASE}/console/login"
        assert (await c.get("/console/worklist")).status_code == 401
        after = await leave_for_the_provider()
        assert after.status_code == 200 and 'name="password"' in after.text  # the provider asks again
