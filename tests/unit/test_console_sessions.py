"""Console sign-in: the access code gives a signed, HttpOnly, SameSite=Strict session naming the
person; roles decide the views; forms need the session's CSRF token."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.messaging.kafka import InMemoryPublisher


@pytest.fixture
async def client(memory_settings):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, publisher=InMemoryPublisher(), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def sign_in(client, token: str) -> httpx.Response:
    return await client.post("/console/login", data={"token": token})


async def test_signing_in_sets_a_strict_httponly_session_and_goes_to_the_roles_home(client) -> None:
    resp = await sign_in(client, "local-dev-token-pm-abq")
    assert resp.status_code == 303 and resp.headers["location"] == "/console"
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    home = await client.get("/console")
    assert home.headers["location"] == "/console/dashboard"
    assert (await client.get("/console/dashboard")).status_code == 200


async def test_signing_in_from_a_link_lands_on_the_page_the_link_opened(client) -> None:
    opened = await client.get("/console/referrals/r-123?done=contacted")  # "Open the referral", signed out
    assert opened.status_code == 401
    assert 'name="next" value="/console/referrals/r-123?done=contacted"' in opened.text
    assert "/console/sign-in/keycloak-local?next=/console/referrals/r-123%3Fdone%3Dcontacted" in opened.text
    signed_in = await client.post("/console/login", data={"token": "local-dev-token-cm-ana",
                                                          "next": "/console/referrals/r-123?done=contacted"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/referrals/r-123?done=contacted"


async def test_signing_in_never_continues_to_another_site(client) -> None:
    for elsewhere in ("https://evil.example/", "//evil.example/console/", "/console/../../x", "/consolex",
                      "/console/login", "/console//evil.example"):
        resp = await client.post("/console/login", data={"token": "local-dev-token-cm-ana", "next": elsewhere})
        assert resp.headers["location"] == "/console", elsewhere


async def test_a_wrong_code_or_an_agency_code_does_not_open_the_console(client) -> None:
    for token in ("nope", "local-dev-token-apd"):
        assert (await sign_in(client, token)).status_code == 401
    assert (await client.get("/console/dashboard")).status_code == 401


async def test_a_tampered_session_is_no_session(client) -> None:
    await sign_in(client, "local-dev-token-cm-ana")
    value = client.cookies["handoff_session"]
    client.cookies.set("handoff_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert (await client.get("/console/my-referrals")).status_code == 401


async def test_each_role_sees_only_its_views(client) -> None:
    await sign_in(client, "local-dev-token-cm-ana")
    assert (await client.get("/console/my-referrals")).status_code == 200
    for path in ("/console/dashboard", "/console/triage", "/console/notices", "/console/reports/abq/2026-11.csv"):
        assert (await client.get(path)).status_code == 403, path
    client.cookies.clear()
    await sign_in(client, "local-dev-token-pm-abq")
    assert (await client.get("/console/dashboard?site=santa-fe")).status_code == 403  # not their site
    client.cookies.clear()
    await sign_in(client, "local-dev-token-admin")
    assert (await client.get("/console/dashboard?site=santa-fe")).status_code == 200  # figures of every site
    assert (await client.get("/console/worklist")).status_code == 403  # but no people


async def test_forms_need_the_sessions_csrf_token(client) -> None:
    await sign_in(client, "local-dev-token-pm-abq")
    assert (await client.post("/console/logout", data={"csrf_token": "forged"})).status_code == 403
    page = (await client.get("/console/dashboard")).text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert (await client.post("/console/logout", data={"csrf_token": token})).status_code == 303


async def test_the_referral_page_names_the_person_only_for_the_case_manager_who_took_it(memory_settings) -> None:
    from datetime import UTC, datetime

    from services.kernel.clock import FakeClock
    from services.kernel.events import (
        AcknowledgedVia,
    )
    from services.kernel.lead import PageAcknowledged
    from services.messaging.events import DisclosureAudited
    from services.platform.reference_files import load_reference_data
    from services.platform.settings import REPO_ROOT
    from services.referral_intake.adapters.read_model import LeadReadModel
    from services.referral_intake.domain.model import open_referral
    from tests.factories import cad_referral

    ref = load_reference_data(REPO_ROOT / "config" / "local")
    now = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    referral = open_referral(cad_referral(occurred_at=now), ref.sites["abq"], ref.agencies["apd"], now)
    model, publisher = LeadReadModel(), InMemoryPublisher()
    for event in (referral, PageAcknowledged(page_id="pg", referral_id=referral.referral_id, acknowledged_by="cm-ana",
                                             via=AcknowledgedVia.link, acknowledged_at=now)):
        model.apply(event)
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, ref, publisher, FakeClock(now), model, follow_topics=False)
    app.state.handoff_details.apply(referral)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await sign_in(c, "local-dev-token-cm-ana")
        page = (await c.get(f"/console/referrals/{referral.referral_id}")).text
        assert "Zebulon Featherstonehaugh" in page and "1987-03-14" in page
        c.cookies.clear()
        await sign_in(c, "local-dev-token-cm-ben")
        page = (await c.get(f"/console/referrals/{referral.referral_id}")).text
        assert "Zebulon" not in page and "Warm handoff" in page
    assert [a.recipient_id for a in publisher.events(DisclosureAudited)] == ["cm-ana"]


async def test_wrong_access_codes_are_limited_per_client(client) -> None:
    for _ in range(10):
        assert (await sign_in(client, "guess")).status_code == 401
    blocked = await sign_in(client, "local-dev-token-pm-abq")  # even the right code waits now
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_the_sign_in_limit_lifts_after_its_window() -> None:
    from services.web.console import SignInLimiter

    now = [0.0]
    limiter = SignInLimiter(attempts=3, window_seconds=60, monotonic=lambda: now[0])
    for _ in range(3):
        limiter.failed("10.0.0.1")
    assert limiter.blocked_for("10.0.0.1") == 61 and limiter.blocked_for("10.0.0.2") == 0
    now[0] = 60.5
    assert limiter.blocked_for("10.0.0.1") == 0


class Console:
    """One API replica on a fake clock, its publisher's records at hand."""

    def __init__(self, settings, reference=None) -> None:
        from datetime import UTC, datetime

        from services.kernel.clock import FakeClock

        self.clock = FakeClock(datetime(2026, 11, 20, 17, 0, tzinfo=UTC))
        self.publisher = InMemoryPublisher()
        self.app = runtime.build_http_app(settings, reference, self.publisher, self.clock, follow_topics=False)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t")

    def audited(self) -> list[tuple[str, bool, str | None, str | None]]:
        from services.web.events import AccessAudited

        return [(a.event_type.value, a.success, a.user_id, a.reason) for a in self.publisher.events(AccessAudited)]


@pytest.fixture
def settings(memory_settings):
    return memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})


async def test_a_session_ends_after_fifteen_idle_minutes_but_not_while_in_use(settings) -> None:
    replica = Console(settings)
    async with replica.client() as c:
        await sign_in(c, "local-dev-token-cm-ana")
        for _ in range(6):  # an hour of use, a look every 14 minutes: the cookie is renewed each time
            replica.clock.advance(minutes=14)
            assert (await c.get("/console/my-referrals")).status_code == 200
        replica.clock.advance(minutes=15, seconds=1)
        ended = await c.get("/console/my-referrals")
        assert ended.status_code == 401 and "ended after 15 minutes without use" in ended.text
        assert "handoff_session" not in c.cookies  # told once
    assert replica.audited() == [("signed_in", True, "cm-ana", None), ("session_expired", False, "cm-ana", "idle")]


async def test_no_session_outlives_its_lifetime_however_busy(settings) -> None:
    replica = Console(settings.model_copy(update={"console_session_hours": 12}))
    async with replica.client() as c:
        await sign_in(c, "local-dev-token-pm-abq")
        for _ in range(12 * 6):
            replica.clock.advance(minutes=10)
            assert (await c.get("/console/dashboard")).status_code == 200
        replica.clock.advance(minutes=1)
        late = await c.get("/console/dashboard")
    assert late.status_code == 401 and "12 hour limit" in late.text
    assert replica.audited()[-1] == ("session_expired", False, "pm-abq", "lifetime")


async def test_signing_out_ends_the_session_on_every_replica_and_the_old_cookie_opens_nothing(settings) -> None:
    from services.web.events import ConsoleSessionEnded

    here, there = Console(settings), Console(settings)
    async with here.client() as c:
        await sign_in(c, "local-dev-token-cm-ana")
        kept = c.cookies["handoff_session"]
        page = (await c.get("/console/my-referrals")).text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        assert (await c.post("/console/logout", data={"csrf_token": token})).status_code == 303
        c.cookies.set("handoff_session", kept)  # the cookie copied before signing out
        again = await c.get("/console/my-referrals")
        assert again.status_code == 401 and "You signed out" in again.text
    [ended] = here.publisher.events(ConsoleSessionEnded)
    assert kept not in repr(ended) and ended.user_id == "cm-ana"
    async with there.client() as other:  # another API replica, once it has read the sessions topic
        other.cookies.set("handoff_session", kept)
        assert (await other.get("/console/my-referrals")).status_code == 200
        there.app.state.sessions.apply(ended)
        assert (await other.get("/console/my-referrals")).status_code == 401
    assert [e[0] for e in here.audited()] == ["signed_in", "signed_out", "access_denied"]


async def test_a_person_removed_from_the_directory_is_out_at_once_and_audited(settings) -> None:
    from services.platform.reference_files import load_reference_data
    from services.platform.settings import REPO_ROOT

    reference = load_reference_data(REPO_ROOT / "config" / "local")
    replica = Console(settings, reference)
    async with replica.client() as c:
        await sign_in(c, "local-dev-token-cm-ana")
        assert (await c.get("/console/my-referrals")).status_code == 200
        del reference.case_managers["cm-ana"]  # the live directory drops her
        gone = await c.get("/console/my-referrals")
    assert gone.status_code == 401 and "no longer in the directory" in gone.text
    assert replica.audited()[-1] == ("access_denied", False, "cm-ana", "not_in_directory")


async def test_every_sign_in_is_audited_without_the_code_and_forms_survive_a_renewed_cookie(settings) -> None:
    from services.web.events import AccessAudited

    replica = Console(settings)
    async with replica.client() as c:
        await sign_in(c, "not-a-code-at-all")
        await sign_in(c, "local-dev-token-cm-ana")
        page = (await c.get("/console/my-referrals")).text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        replica.clock.advance(minutes=5)
        assert (await c.get("/console/my-referrals")).status_code == 200  # renewed: a new cookie value
        assert (await c.post("/console/logout", data={"csrf_token": token})).status_code == 303
    assert [e[:3] for e in replica.audited()] == [("sign_in_refused", False, None), ("signed_in", True, "cm-ana"),
                                                  ("signed_out", True, "cm-ana")]
    records = replica.publisher.events(AccessAudited)
    assert all(r.component == "console" and r.occurred_at and r.client_address for r in records)
    assert "not-a-code-at-all" not in repr(records) and "local-dev-token" not in repr(records)


async def test_the_sign_in_page_offers_each_identity_provider_and_access_codes_only_where_allowed(settings) -> None:
    replica = Console(settings)
    async with replica.client() as c:
        page = (await c.get("/console/login")).text
        assert 'href="/console/sign-in/keycloak-local"' in page and 'name="token"' in page
    from services.platform.settings import Settings

    assert Settings().console_access_codes is False  # a development setting: off unless set
    closed = Console(settings.model_copy(update={"console_access_codes": False}))
    async with closed.client() as c:
        page = (await c.get("/console/login")).text
        assert 'href="/console/sign-in/keycloak-local"' in page and 'name="token"' not in page
        refused = await sign_in(c, "local-dev-token-cm-ana")
        assert refused.status_code == 403 and "handoff_session" not in c.cookies
    assert closed.audited() == [("sign_in_refused", False, None, "access codes are off")]


async def test_a_sign_in_answer_without_its_cookie_or_for_an_unknown_provider_is_refused(settings) -> None:
    replica = Console(settings)
    async with replica.client() as c:
        assert (await c.get("/console/sign-in/nobody")).status_code == 404
        stale = await c.get("/console/signed-in", params={"code": "c", "state": "s"})
        assert stale.status_code == 401 and "expired or was started elsewhere" in stale.text
    assert [a[0] for a in replica.audited()] == ["sign_in_refused", "sign_in_refused"]
