"""Machine clients with access tokens from a real Keycloak, as their own software would get them:

- a case-management system as a SMART Backend Services client (authlib's ``private_key_jwt``, ES384, a library
  we did not write): it finds the token endpoint in ``/fhir/.well-known/smart-configuration``, asks for
  ``system/Task.rs``, reads the Tasks its organisation's consent scope allows, and nothing else: a Task whose
  person's consent names another role is 404, an update or a ServiceRequest its scopes do not grant is 403;
- a CAD with OAuth client credentials (client secret), sending a referral with the access token, and refused
  at the FHIR API, which is not its door.

Every refusal is an ``AccessAudited`` record."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fhir.resources.R4B.bundle import Bundle
from pydantic import SecretStr

from services import runtime
from services.kernel.clock import SystemClock
from services.kernel.events import (
    Consent,
    ConsentRole,
)
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from services.web.events import AccessAudited
from tests.factories import NOW, cad_referral
from tests.identity import CAD_CLIENT, CAD_SECRET
from tests.integration.test_lead_flow import referral_body

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(memory_settings, identity_provider):
    reference = load_reference_data(REPO_ROOT / "config" / "local")
    provider = reference.identity_providers["keycloak-local"].model_copy(update={"issuer": identity_provider.issuer})
    reference = reference.model_copy(update={"identity_providers": {"keycloak-local": provider}})
    model, publisher = LeadReadModel(), InMemoryPublisher()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})
    # The real clock: Keycloak's tokens are valid now, not at the factories' date.
    app = runtime.build_http_app(settings, reference, publisher, SystemClock(), model, follow_topics=False)
    site, agency = reference.sites["abq"], reference.agencies["apd"]
    consented = open_referral(cad_referral("CAD-SMART-1", occurred_at=NOW), site, agency, NOW)
    outreach_only = open_referral(cad_referral("CAD-SMART-2", occurred_at=NOW, consent=Consent(
        recipient_roles=[ConsentRole.outreach])), site, agency, NOW)
    for referral in (consented, outreach_only):
        model.apply(referral)
        app.state.handoff_details.apply(referral)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        client.publisher, client.visible, client.hidden = publisher, consented.referral_id, outreach_only.referral_id
        yield client
    await app.state.providers.close()


def smart_token(identity_provider, token_endpoint: str, scope: str) -> str:
    session = OAuth2Session(identity_provider.smart_client, identity_provider.smart_key,
                            token_endpoint_auth_method="private_key_jwt", scope=scope)
    session.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg="ES384"))
    with session:
        return session.fetch_token(token_endpoint, grant_type="client_credentials")["access_token"]


def denials(client) -> list[tuple[str, str | None]]:
    return [(a.component, a.reason) for a in client.publisher.events(AccessAudited) if not a.success]


async def test_a_smart_backend_services_client_reads_tasks_within_its_consent_scope_and_scopes(
        api, identity_provider) -> None:
    discovered = (await api.get("/fhir/.well-known/smart-configuration")).json()
    assert discovered["token_endpoint"] == identity_provider.token_endpoint
    assert "private_key_jwt" in discovered["token_endpoint_auth_methods_supported"]
    assert "system/Task.rs" in discovered["scopes_supported"]
    token = await asyncio.to_thread(smart_token, identity_provider, discovered["token_endpoint"], "system/Task.rs")
    bearer = {"Authorization": f"Bearer {token}"}

    search = await api.get("/fhir/Task", headers=bearer)
    assert search.status_code == 200, search.text
    assert [e.resource.id for e in Bundle.model_validate(search.json()).entry] == [api.visible]
    assert (await api.get(f"/fhir/Task/{api.visible}", headers=bearer)).status_code == 200
    assert (await api.get(f"/fhir/Task/{api.hidden}", headers=bearer)).status_code == 404  # consent: outreach only

    update = await api.put(f"/fhir/Task/{api.visible}", headers={**bearer, "Content-Type": "application/fhir+json"},
                           content='{"resourceType": "Task", "status": "accepted", "intent": "order"}')
    assert update.status_code == 403 and "system/Task.u" in update.text
    assert 'error="insufficient_scope"' in update.headers["WWW-Authenticate"]
    service_request = await api.get(f"/fhir/ServiceRequest/{api.visible}", headers=bearer)
    assert service_request.status_code == 403 and "system/ServiceRequest.r" in service_request.text

    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (await api.get("/fhir/Task", headers={"Authorization": f"Bearer {tampered}"})).status_code == 401
    assert [reason.split(": ", 1)[1] for _, reason in denials(api)] == [
        "the token's scopes do not include system/Task.u", "the token's scopes do not include system/ServiceRequest.r",
        "the signature does not verify"]


def cad_token(identity_provider) -> str:
    with OAuth2Session(CAD_CLIENT, CAD_SECRET, token_endpoint_auth_method="client_secret_basic") as session:
        return session.fetch_token(identity_provider.token_endpoint, grant_type="client_credentials")["access_token"]


async def test_a_cad_sends_a_referral_with_a_client_credentials_token_and_only_there(api, identity_provider) -> None:
    token = await asyncio.to_thread(cad_token, identity_provider)
    bearer = {"Authorization": f"Bearer {token}"}
    sent = await api.post("/v1/referrals", json=referral_body("CAD-CC-1"), headers=bearer)
    assert sent.status_code == 202, sent.text
    elsewhere = await api.get("/fhir/Task", headers=bearer)
    assert elsewhere.status_code == 403 and "not registered as a case-management organisation" in elsewhere.text
    assert denials(api) == [("api", "GET /fhir/Task: client keycloak-local:cad-apd is not registered as a "
                                    "case-management organisation")]
