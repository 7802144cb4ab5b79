"""OpenID Connect for people signing in: the identity provider's discovery document and signing keys,
and its ID token checked as OpenID Connect Core (3.1.3.7) asks, with joserfc (no JWT or JWKS code of
our own).

- ``Provider``: what discovery says (issuer, endpoints, keys' address), fetched once per issuer; its
  ``issuer`` must be the one configured, to the letter.
- ``ProviderKeys``: the JWKS, fetched once and again when a token names a key id it lacks (the
  provider rotated its keys), at most once per ``min_refresh`` so that made-up key ids cannot make
  Handoff hammer the provider.
- ``check_id_token``: signature by a published key with an asymmetric algorithm (never ``none``, never
  HS256 signed with the public key), ``iss``, ``aud`` (and ``azp`` when there are several audiences),
  ``exp``, ``nbf`` and ``iat`` with a small clock-skew allowance, and the ``nonce`` this sign-in sent.
  Any failure is ``IdTokenRefused`` with a reason a sign-in page and the audit can show.
- ``mfa_used``: whether the sign-in used a second factor, by ``amr`` (RFC 8176) or ``acr``, as each
  provider is configured to say it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ClaimError, DecodeError, JoseError
from joserfc.jwk import KeySet

# Asymmetric only: a provider signs with its private key and publishes the public one. ``none`` and the
# HMAC family are refused outright (an HS256 token "signed" with the published public key is a forgery).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# RFC 8176 methods that are a second factor beside a password (or a factor strong on its own). ``sms`` and
# ``tel`` are left out: agencies read CJIS as NIST AAL2, which does not count a code sent by text or call.
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina"})
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_AGE_SECONDS = 600  # an ID token issued longer ago than this is not from the sign-in under way


class IdTokenRefused(Exception):
    """The ID token cannot be taken: ``reason`` says why, in words for the page and the audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderUnavailable(Exception):
    """The identity provider did not answer (or answered nonsense): sign-in says so; sessions carry on."""


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None

    @classmethod
    async def discover(cls, issuer: str, http: httpx.AsyncClient) -> Provider:
        """The provider's discovery document; its ``issuer`` must be ``issuer`` exactly (OIDC Discovery 4.3)."""
        try:
            response = await http.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"discovery at {issuer}: {type(exc).__name__}") from None
        if document.get("issuer") != issuer:
            raise ProviderUnavailable(f"discovery at {issuer} names another issuer")
        try:
            return cls(issuer, document["authorization_endpoint"], document["token_endpoint"], document["jwks_uri"],
                       document.get("end_session_endpoint"))
        except KeyError as missing:
            raise ProviderUnavailable(f"discovery at {issuer} lacks {missing}") from None


class ProviderKeys:
    """A provider's published signing keys, refreshed when a token names a key id not among them."""

    def __init__(self, jwks_uri: str, http: httpx.AsyncClient, min_refresh_seconds: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.jwks_uri, self.http = jwks_uri, http
        self.min_refresh_seconds, self.monotonic = min_refresh_seconds, monotonic
        self.keys: KeySet | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def for_key_id(self, kid: str | None) -> KeySet:
        async with self._lock:
            if self.keys is None or (not self._has(kid) and self._may_refresh()):
                await self._fetch()
        assert self.keys is not None
        if not self._has(kid):
            raise IdTokenRefused("the token's key id is not one the identity provider publishes")
        return self.keys

    def _has(self, kid: str | None) -> bool:
        return self.keys is not None and kid is not None and any(k.kid == kid for k in self.keys.keys)

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or self.monotonic() - self._fetched_at >= self.min_refresh_seconds

    async def _fetch(self) -> None:
        try:
            response = await self.http.get(self.jwks_uri)
            response.raise_for_status()
            published = response.json()
            signing = [k for k in published.get("keys", []) if k.get("use", "sig") == "sig" and k.get("kid")]
            self.keys = KeySet.import_key_set({"keys": signing})
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise ProviderUnavailable(f"signing keys at {self.jwks_uri}: {type(exc).__name__}") from None
        self._fetched_at = self.monotonic()


async def check_id_token(token: str, *, issuer: str, client_id: str, keys: ProviderKeys, nonce: str,
                         now: datetime) -> dict[str, Any]:
    """The ID token's claims, when every check holds; ``IdTokenRefused`` naming the first that does not."""
    try:
        header = dict(jws.extract_compact(token.encode()).protected)
    except (DecodeError, ValueError) as exc:
        raise IdTokenRefused(f"not a signed token ({type(exc).__name__})") from None
    algorithm = header.get("alg")
    if algorithm not in SIGNING_ALGORITHMS:
        raise IdTokenRefused(f"signing algorithm {algorithm!r} is not accepted")
    key_set = await keys.for_key_id(header.get("kid"))
    try:
        decoded = jwt.decode(token, key_set, algorithms=list(SIGNING_ALGORITHMS))
    except BadSignatureError:
        raise IdTokenRefused("the signature does not verify") from None
    except JoseError as exc:
        raise IdTokenRefused(f"not a valid token ({type(exc).__name__})") from None
    claims = dict(decoded.claims)
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()), leeway=CLOCK_SKEW_SECONDS,
        iss={"essential": True, "value": issuer}, sub={"essential": True}, exp={"essential": True},
        iat={"essential": True}, nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except ClaimError as exc:
        raise IdTokenRefused(_claim_reason(exc)) from None
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if client_id not in audiences:
        raise IdTokenRefused("the token is for another client (aud)")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenRefused("the token names several audiences and another authorized party (azp)")
    if int(claims["iat"]) < now.timestamp() - MAX_TOKEN_AGE_SECONDS - CLOCK_SKEW_SECONDS:
        raise IdTokenRefused("the token was issued too long ago for this sign-in (iat)")
    return claims


def _claim_reason(exc: ClaimError) -> str:
    claim = getattr(exc, "claim", None) or str(exc)
    said = {"exp": "the token has expired (exp)", "nbf": "the token is not valid yet (nbf)",
            "iat": "the token's issue time is in the future (iat)", "iss": "the token is from another issuer (iss)",
            "nonce": "the token answers another sign-in (nonce)", "sub": "the token names nobody (sub)"}
    return said.get(claim, f"the token's {claim} claim does not hold")


def mfa_used(claims: dict[str, Any], mfa_methods: Iterable[str] = MFA_METHODS,
             mfa_acr_values: Iterable[str] = ()) -> bool:
    """Whether the sign-in used a second factor: an ``amr`` method in ``mfa_methods`` (RFC 8176: Entra and
    Okta say ``mfa``, Keycloak ``otp``), or an ``acr`` in ``mfa_acr_values`` where a provider says it that way."""
    amr = claims.get("amr") or []
    methods = {amr} if isinstance(amr, str) else set(amr)
    return bool(methods & set(mfa_methods)) or (claims.get("acr") in set(mfa_acr_values))
