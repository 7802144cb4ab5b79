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
  Any failure is ``TokenRefused`` with a reason a sign-in page and the audit can show.
- ``check_access_token``: a machine client's access token (CAD client credentials, SMART Backend
  Services), by the same signature checks, for Handoff's API audience; ``client_of`` and ``scopes_of``
  say whose it is and what it grants.
- ``KnownProviders``: discovery and keys per provider, shared by sign-in and the APIs.
- ``mfa_used``: whether the sign-in used a second factor, by ``amr`` (RFC 8176) or ``acr``, as each
  provider is configured to say it.
"""

from __future__ import annotations

import asyncio
import json
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


class TokenRefused(Exception):
    """An ID or access token cannot be taken: ``reason`` says why, in words for the page and the audit."""

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
            raise TokenRefused("the token's key id is not one the identity provider publishes")
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


async def _signed_claims(token: str, keys: ProviderKeys) -> dict[str, Any]:
    """The claims of a token signed by one of ``keys`` with an asymmetric algorithm; ``TokenRefused`` otherwise."""
    try:
        header = dict(jws.extract_compact(token.encode()).protected)
    except (DecodeError, ValueError) as exc:
        raise TokenRefused(f"not a signed token ({type(exc).__name__})") from None
    algorithm = header.get("alg")
    if algorithm not in SIGNING_ALGORITHMS:
        raise TokenRefused(f"signing algorithm {algorithm!r} is not accepted")
    key_set = await keys.for_key_id(header.get("kid"))
    try:
        decoded = jwt.decode(token, key_set, algorithms=list(SIGNING_ALGORITHMS))
    except BadSignatureError:
        raise TokenRefused("the signature does not verify") from None
    except JoseError as exc:
        raise TokenRefused(f"not a valid token ({type(exc).__name__})") from None
    return dict(decoded.claims)


def _validate(claims: dict[str, Any], now: datetime, **expected: dict) -> None:
    registry = jwt.JWTClaimsRegistry(now=int(now.timestamp()), leeway=CLOCK_SKEW_SECONDS, **expected)
    try:
        registry.validate(claims)
    except ClaimError as exc:
        raise TokenRefused(_claim_reason(exc)) from None


def _audiences(claims: dict[str, Any]) -> list:
    return claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]


async def check_id_token(token: str, *, issuer: str, client_id: str, keys: ProviderKeys, nonce: str,
                         now: datetime) -> dict[str, Any]:
    """The ID token's claims, when every check holds; ``TokenRefused`` naming the first that does not."""
    claims = await _signed_claims(token, keys)
    _validate(claims, now, iss={"essential": True, "value": issuer}, sub={"essential": True},
              exp={"essential": True}, iat={"essential": True}, nonce={"essential": True, "value": nonce})
    audiences = _audiences(claims)
    if client_id not in audiences:
        raise TokenRefused("the token is for another client (aud)")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise TokenRefused("the token names several audiences and another authorized party (azp)")
    if int(claims["iat"]) < now.timestamp() - MAX_TOKEN_AGE_SECONDS - CLOCK_SKEW_SECONDS:
        raise TokenRefused("the token was issued too long ago for this sign-in (iat)")
    return claims


async def check_access_token(token: str, *, issuer: str, audience: str, keys: ProviderKeys,
                             now: datetime) -> dict[str, Any]:
    """A machine client's access token (RFC 9068 where the provider follows it): signed by the provider, from
    ``issuer``, for ``audience`` (Handoff's APIs, not any API the provider serves), within its lifetime."""
    claims = await _signed_claims(token, keys)
    _validate(claims, now, iss={"essential": True, "value": issuer}, exp={"essential": True})
    if audience not in _audiences(claims):
        raise TokenRefused("the token is for another API (aud)")
    return claims


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWT claims, read only to pick whose keys check it; None when not a JWT."""
    if token.count(".") != 2:  # a static API token: no parse attempt on every request
        return None
    try:
        payload = json.loads(jws.extract_compact(token.encode()).payload)
    except (DecodeError, ValueError):
        return None
    return payload.get("iss") if isinstance(payload, dict) and isinstance(payload.get("iss"), str) else None


def client_of(claims: dict[str, Any]) -> str | None:
    """Which client an access token was issued to: ``azp`` (Keycloak, Entra v2), ``client_id`` (RFC 9068,
    Okta ``cid``), or Entra v1's ``appid``."""
    for claim in ("client_id", "azp", "cid", "appid"):
        if isinstance(claims.get(claim), str):
            return claims[claim]
    return None


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """What an access token grants: ``scope`` (space-separated, RFC 9068), ``scp``, or Entra's app ``roles``."""
    granted: set[str] = set()
    for claim in ("scope", "scp", "roles"):
        value = claims.get(claim)
        granted.update(value.split() if isinstance(value, str) else (v for v in value or () if isinstance(v, str)))
    return frozenset(granted)


class KnownProviders:
    """Each identity provider's discovery document and keys, fetched when first needed and reused (again when
    its configured issuer changes), for sign-in and for the APIs' access tokens alike."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds
        self._http: httpx.AsyncClient | None = None
        self._known: dict[str, tuple[Provider, ProviderKeys]] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        """One connection pool, opened when first needed (and again after ``close``, as an app restarts)."""
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(timeout=self.timeout_seconds)
            self._known.clear()  # their keys' client was the closed one
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def get(self, provider_id: str, issuer: str) -> tuple[Provider, ProviderKeys]:
        http = self.http
        known = self._known.get(provider_id)
        if known is None or known[0].issuer != issuer:
            provider = await Provider.discover(issuer, http)
            known = self._known[provider_id] = (provider, ProviderKeys(provider.jwks_uri, http))
        return known


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
