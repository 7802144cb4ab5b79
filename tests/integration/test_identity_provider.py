"""Sign-in against a real identity provider (Keycloak from Maven Central on loopback, the demo realm): a
person signs in with password and TOTP, and the ID token the provider issues passes every check Handoff
makes, with ``amr`` saying a second factor was used. What the provider itself refuses (a reused code, a
code without its PKCE verifier) and what Handoff refuses (another sign-in's nonce, another client's
token) are refused here too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from services.web.oidc import Provider, ProviderKeys, TokenRefused, check_id_token, mfa_used
from tests.identity import CONSOLE_CLIENT, CONSOLE_SECRET, authorization_code, pkce

pytestmark = pytest.mark.integration
REDIRECT = "http://127.0.0.1:8080/console/signed-in"


async def exchange(http: httpx.AsyncClient, provider: Provider, code: str, verifier: str) -> httpx.Response:
    return await http.post(provider.token_endpoint, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": CONSOLE_CLIENT, "client_secret": CONSOLE_SECRET})


async def test_password_and_totp_give_an_id_token_every_check_takes(keycloak_issuer) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        provider = await Provider.discover(keycloak_issuer, http)
        keys = ProviderKeys(provider.jwks_uri, http)
        verifier, challenge = pkce()
        code = await authorization_code(keycloak_issuer, "cm-ana", REDIRECT, state="state-1", nonce="nonce-1",
                                        challenge=challenge)
        # A person's browser takes its time: the methods must still be named seconds after the sign-in (Keycloak
        # names them for its authenticators' maxAge, which LocalKeycloak sets; unset, only within the second).
        await asyncio.sleep(2)
        answer = await exchange(http, provider, code, verifier)
        assert answer.status_code == 200, answer.text
        id_token = answer.json()["id_token"]

        async def checked(nonce: str = "nonce-1", client_id: str = CONSOLE_CLIENT) -> dict:
            return await check_id_token(id_token, issuer=keycloak_issuer, client_id=client_id, keys=keys, nonce=nonce,
                                        now=datetime.now(UTC))

        claims = await checked()
        assert claims["preferred_username"] == "cm-ana" and claims["email_verified"] is True
        assert "otp" in claims["amr"] and mfa_used(claims)
        with pytest.raises(TokenRefused, match="another sign-in"):
            await checked(nonce="nonce-of-another-sign-in")
        with pytest.raises(TokenRefused, match="another client"):
            await checked(client_id="another-client")

        again = await exchange(http, provider, code, verifier)  # a reused authorization code
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        _, challenge = pkce()
        stolen = await authorization_code(keycloak_issuer, "pm-abq", REDIRECT, state="state-2", nonce="nonce-2",
                                          challenge=challenge)
        without = await exchange(http, provider, stolen, "a-verifier-that-is-not-the-one-challenged-for-0123456789")
        assert without.status_code == 400 and without.json()["error"] == "invalid_grant"
