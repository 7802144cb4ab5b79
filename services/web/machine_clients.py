"""Machine clients that bring an access token from an identity provider instead of a static API token: a
CAD agency's OAuth 2.0 client credentials, a case-management system's SMART Backend Services client
(``private_key_jwt`` at the provider's token endpoint, system scopes such as ``system/Task.rs``).

Handoff is the resource server: it checks the token against the provider the reference data names for
its issuer (signature by a published key, issuer, Handoff's API audience, lifetime), and the client
against the directory (an agency's or organisation's ``clients``). The token's scopes can only narrow
what that agency or organisation may do; the organisation's consent scope still decides what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kernel.clock import Clock
from services.kernel.reference import IdentityProvider, ReferenceData
from services.web.oidc import KnownProviders, TokenRefused, check_access_token, client_of, scopes_of, unverified_issuer


@dataclass(frozen=True)
class MachineClient:
    account: str  # "<provider id>:<client id>", as ``clients`` in the reference data names it
    scopes: frozenset[str]


class AccessTokens:
    def __init__(self, reference: ReferenceData, providers: KnownProviders, clock: Clock) -> None:
        self.reference, self.providers, self.clock = reference, providers, clock

    async def client(self, token: str) -> MachineClient | None:
        """The client a valid access token was issued to; None for a token that is no JWT with an issuer (a static
        API token, checked elsewhere); ``TokenRefused`` (or ``ProviderUnavailable``) for one that fails a check."""
        issuer = unverified_issuer(token)
        if issuer is None:
            return None
        config = next((p for p in self.reference.identity_providers.values() if p.issuer == issuer), None)
        if config is None:
            raise TokenRefused("tokens from this issuer are not accepted")
        _provider, keys = await self.providers.get(config.provider_id, config.issuer)
        claims = await check_access_token(token, issuer=config.issuer, audience=config.api_audience, keys=keys,
                                          now=self.clock.now())
        client_id = client_of(claims)
        if client_id is None:
            raise TokenRefused("the token names no client")
        return MachineClient(f"{config.provider_id}:{client_id}", scopes_of(claims))

    async def token_endpoint_for_organizations(self) -> str | None:
        """Where SMART Backend Services clients get their tokens: the token endpoint of the provider the
        organisations' clients are registered at (the first by id, when there are several)."""
        named = sorted({client.split(":", 1)[0] for org in self.reference.organizations.values()
                        for client in org.clients})
        config: IdentityProvider | None = next(
            (self.reference.identity_providers[p] for p in named if p in self.reference.identity_providers), None)
        if config is None:
            return None
        provider, _keys = await self.providers.get(config.provider_id, config.issuer)
        return provider.token_endpoint
