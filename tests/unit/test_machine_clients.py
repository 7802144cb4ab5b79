"""Machine clients' access tokens (CAD client credentials, SMART Backend Services): taken only when signed by
the provider the reference data names for their issuer, for Handoff's API audience, within their lifetime; the
client must be one an agency or organisation lists, and a SMART client's system scopes narrow what it may do.
Keys here are made by the test (joserfc) and served in memory; tests/integration/test_machine_clients.py runs
the same path against a real Keycloak."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.kernel.clock import FakeClock
from services.kernel.reference import IdentityProvider, ReferenceData
from services.web import smart
from services.web.machine_clients import AccessTokens
from services.web.oidc import KnownProviders, TokenRefused, check_access_token, client_of, scopes_of

ISSUER = "https://idp.example.gov/realms/county"
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})


def token(key: RSAKey = KEY, alg: str = "RS384", **changes) -> str:
    claims = {"iss": ISSUER, "aud": ["handoff-api", "account"], "azp": "fhir-abq-cm", "sub": "service-account-1",
              "scope": "system/Task.rs profile", "iat": int(NOW.timestamp()),
              "exp": int((NOW + timedelta(minutes=5)).timestamp()), **changes}
    return jwt.encode({"alg": alg, "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key,
                      algorithms=[alg])


def provider_http() -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth",
                                             "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/certs"})
        return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


@pytest.fixture
def tokens() -> AccessTokens:
    reference = ReferenceData(identity_providers={"county": IdentityProvider(
        provider_id="county", name="County", issuer=ISSUER, client_id="handoff-console", organization="County")})
    providers = KnownProviders()
    providers._http = provider_http()  # the provider's documents, in memory
    return AccessTokens(reference, providers, FakeClock(NOW))


async def test_a_token_for_handoff_names_its_client_and_scopes(tokens) -> None:
    client = await tokens.client(token())
    assert client.account == "county:fhir-abq-cm" and client.scopes == {"system/Task.rs", "profile"}
    assert await tokens.token_endpoint_for_organizations() is None  # no organisation names a client there yet


@pytest.mark.parametrize("changes, reason", [
    ({"aud": "account"}, "another API"),
    ({"aud": None}, "another API"),
    ({"exp": int((NOW - timedelta(minutes=2)).timestamp())}, "expired"),
    ({"nbf": int((NOW + timedelta(minutes=5)).timestamp())}, "not valid yet"),
    ({"exp": None}, "exp"),
    ({"iss": "https://evil.example.com"}, "issuer are not accepted"),
    ({"azp": None}, "names no client"),
], ids=["aud", "no-aud", "exp", "nbf", "no-exp", "iss", "no-client"])
async def test_each_check_that_does_not_hold_is_named(tokens, changes, reason) -> None:
    with pytest.raises(TokenRefused, match=reason):
        await tokens.client(token(**changes))


async def test_forgeries_and_unknown_keys_are_refused(tokens) -> None:
    signed = token().split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "key-1"}).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRefused, match="'none' is not accepted"):
        await tokens.client(f"{header}.{signed[1]}.")
    stranger = RSAKey.generate_key(2048, parameters={"kid": "made-up", "use": "sig"})
    with pytest.raises(TokenRefused, match="key id"):
        await tokens.client(token(key=stranger))
    with pytest.raises(TokenRefused, match="signature"):
        forged = token(key=RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"}))
        await tokens.client(forged)


async def test_the_access_token_check_is_the_id_tokens_signature_check_with_an_api_audience(tokens) -> None:
    _provider, keys = await tokens.providers.get("county", ISSUER)
    claims = await check_access_token(token(), issuer=ISSUER, audience="handoff-api", keys=keys, now=NOW)
    assert client_of(claims) == "fhir-abq-cm" and "system/Task.rs" in scopes_of(claims)
    assert client_of({"appid": "entra-v1-app"}) == "entra-v1-app"
    assert scopes_of({"roles": ["Task.Read"], "scp": "a b"}) == {"Task.Read", "a", "b"}


@pytest.mark.parametrize("scopes, resource, interaction, allowed", [
    (["system/Task.rs"], "Task", "r", True),
    (["system/Task.rs"], "Task", "s", True),
    (["system/Task.rs"], "Task", "u", False),
    (["system/Task.rs"], "ServiceRequest", "r", False),
    (["system/*.rs"], "ServiceRequest", "r", True),
    (["system/Task.read"], "Task", "s", True),   # SMART v1
    (["system/Task.write"], "Task", "u", True),
    (["system/Task.write"], "Task", "r", False),
    (["system/*.*"], "Task", "u", True),
    (["system/Task.rs?status=requested"], "Task", "r", False),  # a filter Handoff does not apply grants nothing
    (["patient/Task.rs", "user/Task.rs"], "Task", "r", False),  # not a system client's scopes
    (["system/Task.sr"], "Task", "r", False),  # v2 letters come in order
    (["system/Task.cruds"], "Task", "d", True),
])
def test_system_scopes_grant_interactions_by_letter(scopes, resource, interaction, allowed) -> None:
    assert smart.permits(scopes, resource, interaction) is allowed


def test_a_provider_group_mapping_grants_only_the_roles_it_names() -> None:
    plain = IdentityProvider(provider_id="county", name="County", issuer=ISSUER, client_id="c", organization="County")
    assert plain.roles_granted({"groups": ["anything"]}) is None  # the directory's role alone
    mapped = plain.model_copy(update={"group_roles": {"cm": "case_manager", "hwc": "coordinator"}})
    assert mapped.roles_granted({"groups": ["cm", "admins"]}) == {"case_manager"}
    assert mapped.roles_granted({"groups": ["/county/cm"]}) == frozenset()  # a path is another name
    assert mapped.roles_granted({"groups": "hwc"}) == {"coordinator"}
    assert mapped.roles_granted({}) == frozenset()
