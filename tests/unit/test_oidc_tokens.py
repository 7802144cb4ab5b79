"""An ID token is taken only when every check OpenID Connect asks for holds, and each refusal says which
failed: the wrong issuer or audience, expired, not yet valid, issued too long ago, ``alg: none``, HS256
"signed" with the public key, a nonce from another sign-in, a key id the provider does not publish.
The provider's keys here are made by the test (joserfc) and served over a transport in memory; the
same checks run against a real Keycloak in tests/integration/test_identity_provider.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.web.oidc import ProviderKeys, TokenRefused, check_id_token, mfa_used

ISSUER, CLIENT, NONCE = "https://idp.example.gov/realms/county", "handoff-console", "n-0123456789"
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


class Provider:
    """Signing keys and their JWKS, served over an in-memory transport that counts the fetches."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})]
        self.fetches = 0

    def jwks(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.jwks))

    def token(self, key: RSAKey | None = None, alg: str = "RS256", **changes) -> str:
        key = key or self.keys[0]
        claims = {"iss": ISSUER, "aud": CLIENT, "sub": "f3b1c2d4", "nonce": NONCE, "iat": int(NOW.timestamp()),
                  "exp": int((NOW + timedelta(minutes=5)).timestamp()), "amr": ["pwd", "otp"], **changes}
        return jwt.encode({"alg": alg, "kid": key.kid}, {k: v for k, v in claims.items() if v is not None}, key)


@pytest.fixture
def idp() -> Provider:
    return Provider()


async def check(idp: Provider, token: str, keys: ProviderKeys | None = None, now: datetime = NOW, nonce: str = NONCE):
    async with idp.client() as http:
        keys = keys or ProviderKeys("https://idp.example.gov/jwks", http)
        keys.http = http
        return await check_id_token(token, issuer=ISSUER, client_id=CLIENT, keys=keys, nonce=nonce, now=now)


async def test_a_token_every_check_holds_for_is_taken(idp) -> None:
    claims = await check(idp, idp.token())
    assert claims["sub"] == "f3b1c2d4" and mfa_used(claims)
    assert (await check(idp, idp.token(exp=int((NOW - timedelta(seconds=30)).timestamp()))))  # within the skew


@pytest.mark.parametrize("changes, reason", [
    ({"iss": "https://evil.example.com"}, "another issuer"),
    ({"aud": "another-client"}, "another client"),
    ({"aud": ["another-client", CLIENT], "azp": "another-client"}, "authorized party"),
    ({"exp": int((NOW - timedelta(minutes=2)).timestamp())}, "expired"),
    ({"nbf": int((NOW + timedelta(minutes=5)).timestamp())}, "not valid yet"),
    ({"iat": int((NOW - timedelta(hours=1)).timestamp()), "exp": int((NOW + timedelta(hours=1)).timestamp())},
     "too long ago"),
    ({"nonce": "n-from-another-sign-in"}, "another sign-in"),
    ({"nonce": None}, "nonce"),
    ({"sub": None}, "names nobody"),
], ids=["iss", "aud", "azp", "exp", "nbf", "iat", "nonce", "no-nonce", "no-sub"])
async def test_each_claim_that_does_not_hold_is_named(idp, changes, reason) -> None:
    with pytest.raises(TokenRefused, match=reason):
        await check(idp, idp.token(**changes))


async def test_alg_none_and_hs256_signed_with_the_public_key_are_forgeries(idp) -> None:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    payload = {"iss": ISSUER, "aud": CLIENT, "sub": "x", "nonce": NONCE, "iat": int(NOW.timestamp()),
               "exp": int(NOW.timestamp()) + 300}
    unsigned = f"{b64({'alg': 'none', 'kid': 'key-1'})}.{b64(payload)}."
    with pytest.raises(TokenRefused, match="algorithm 'none'"):
        await check(idp, unsigned)
    import hashlib
    import hmac

    public = idp.keys[0].as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'key-1'})}.{b64(payload)}"
    mac = base64.urlsafe_b64encode(hmac.new(public, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(TokenRefused, match="algorithm 'HS256'"):
        await check(idp, f"{signing_input}.{mac.decode()}")
    tampered = idp.token().split(".")
    tampered[1] = b64({**payload, "sub": "someone-else"})
    with pytest.raises(TokenRefused, match="signature"):
        await check(idp, ".".join(tampered))


async def test_a_rotated_key_is_fetched_and_an_unknown_key_id_is_refused_without_hammering(idp) -> None:
    monotonic = [0.0]
    async with idp.client() as http:
        keys = ProviderKeys("https://idp.example.gov/jwks", http, min_refresh_seconds=60, monotonic=lambda: monotonic[0])
        await check(idp, idp.token(), keys)
        rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2", "use": "sig"})
        idp.keys.append(rotated)
        monotonic[0] = 61
        assert (await check(idp, idp.token(key=rotated), keys))["sub"]  # fetched again for the new key id
        stranger = RSAKey.generate_key(2048, parameters={"kid": "made-up", "use": "sig"})
        for _ in range(3):
            with pytest.raises(TokenRefused, match="key id is not one the identity provider publishes"):
                await check(idp, idp.token(key=stranger), keys)
        assert idp.fetches == 2  # no fetch per made-up key id within the minute


def test_mfa_is_read_from_amr_or_as_a_provider_says_it_in_acr() -> None:
    assert mfa_used({"amr": ["pwd", "otp"]}) and mfa_used({"amr": ["mfa"]}) and mfa_used({"amr": "hwk"})
    assert not mfa_used({"amr": ["pwd"]}) and not mfa_used({}) and not mfa_used({"amr": ["pwd", "sms"]})
    assert mfa_used({"acr": "urn:county:loa:2"}, mfa_acr_values=["urn:county:loa:2"])
    assert not mfa_used({"acr": "1"}, mfa_acr_values=["urn:county:loa:2"])
