"""Console sign-in with the person's own identity provider: OpenID Connect's authorization code flow
with PKCE, ``state`` and ``nonce`` (OIDC Core 3.1).

1. ``/console/sign-in/{provider}``: a fresh state, nonce and PKCE verifier go into a short-lived signed
   cookie (SameSite=Lax: it must come back on the provider's redirect), and the person goes to the
   provider.
2. ``/console/signed-in``: the state must match the cookie's, the code is exchanged once (with the
   verifier and Handoff's client secret), the ID token must pass ``oidc.check_id_token`` with the
   cookie's nonce, the sign-in must show a second factor where the provider is set to require it, and
   the account must be one the directory names. Then the console session begins; anything else is a
   sign-in page saying why, and an ``AccessAudited`` record.

The provider's discovery document and keys are fetched once per provider and reused; when the provider
cannot be reached, sign-in says so and the sessions already open carry on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from services.kernel.clock import Clock
from services.kernel.reference import IdentityProvider
from services.web.console import (
    AccessLog,
    Sessions,
    Viewer,
    after_sign_in,
    find_account,
    role_of,
    set_session_cookie,
    sign_in_page,
)
from services.web.deps import app_state
from services.web.events import AccessEvent
from services.web.oidc import (
    KnownProviders,
    Provider,
    ProviderKeys,
    ProviderUnavailable,
    TokenRefused,
    check_id_token,
    mfa_used,
)

SIGN_IN_COOKIE = "handoff_sign_in"
SIGN_IN_SECONDS = 600  # from leaving for the provider to coming back


class SingleSignOn:
    def __init__(self, sessions: Sessions, access: AccessLog, public_base_url: str, clock: Clock, secret: str,
                 providers: KnownProviders) -> None:
        self.sessions, self.access, self.clock, self.providers = sessions, access, clock, providers
        self.redirect_uri = f"{public_base_url.rstrip('/')}/console/signed-in"
        self.signed_out_uri = f"{public_base_url.rstrip('/')}/console/login"  # where the provider sends them back
        self.serializer = URLSafeTimedSerializer(secret, salt="handoff-console-sign-in")

    async def end_session_url(self, viewer: Viewer) -> str | None:
        """Where a person who signed in at a provider goes on signing out, so that the provider ends its
        session too (OIDC RP-Initiated Logout): else the next sign-in there would need no password."""
        if viewer.signed_in_with is None:
            return None
        provider_id, id_token = viewer.signed_in_with
        config = self.sessions.reference.identity_providers.get(provider_id)
        try:
            provider = (await self.provider(config))[0] if config else None
        except ProviderUnavailable:
            return None  # signed out here all the same; the provider's own session ends on its own timeout
        if provider is None or not provider.end_session_endpoint:
            return None
        return f"{provider.end_session_endpoint}?" + urlencode({
            "id_token_hint": id_token, "client_id": config.client_id,
            "post_logout_redirect_uri": self.signed_out_uri})

    async def provider(self, config: IdentityProvider) -> tuple[Provider, ProviderKeys]:
        return await self.providers.get(config.provider_id, config.issuer)


def client_secret(config: IdentityProvider) -> str:
    """Handoff's secret at this provider, from the environment (or the file it names): never from the repo."""
    if os.environ.get(config.secret_variable):
        return os.environ[config.secret_variable]
    path = os.environ.get(f"{config.secret_variable}_FILE")
    return Path(path).read_text().strip() if path else ""


router = APIRouter(include_in_schema=False)
SSO = Annotated[SingleSignOn, Depends(app_state("sso"))]


async def refused(sso: SingleSignOn, request: Request, why: str, *, status: int = 401, provider: str | None = None,
                  user_id: str | None = None) -> Response:
    await sso.access.record(request, AccessEvent.sign_in_refused, False, user_id=user_id,
                        reason=f"{provider}: {why}" if provider else why)
    response = sign_in_page(sso.sessions, f"Sign-in refused: {why}.", status=status)
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


@router.get("/console/sign-in/{provider_id}")
async def start(request: Request, provider_id: str, sso: SSO, next: str = "") -> Response:
    config = sso.sessions.reference.identity_providers.get(provider_id)
    if config is None:
        return await refused(sso, request, "no such identity provider", status=404)
    try:
        provider, _keys = await sso.provider(config)
    except ProviderUnavailable:
        return await refused(sso, request, f"{config.name} cannot be reached just now; try again in a few minutes",
                             status=503, provider=provider_id)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"response_type": "code", "client_id": config.client_id, "redirect_uri": sso.redirect_uri,
                       "scope": " ".join(config.scopes), "state": state, "nonce": nonce,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    response = RedirectResponse(f"{provider.authorization_endpoint}?{query}", status_code=303)
    response.set_cookie(SIGN_IN_COOKIE, sso.serializer.dumps([provider_id, state, nonce, verifier,
                                                              after_sign_in(next)]),
                        max_age=SIGN_IN_SECONDS, httponly=True, samesite="lax", secure=sso.sessions.secure_cookies,
                        path="/console")
    return response


@router.get("/console/signed-in")
async def signed_in(request: Request, sso: SSO, code: str = "", state: str = "", error: str = "") -> Response:
    try:
        provider_id, expected_state, nonce, verifier, *then = sso.serializer.loads(
            request.cookies.get(SIGN_IN_COOKIE, ""), max_age=SIGN_IN_SECONDS)
    except (BadSignature, ValueError, TypeError):
        return await refused(sso, request, "this sign-in expired or was started elsewhere; please start again")
    config = sso.sessions.reference.identity_providers.get(provider_id)
    if config is None:
        return await refused(sso, request, "no such identity provider", provider=provider_id)
    if not hmac.compare_digest(str(expected_state), state):
        return await refused(sso, request, "the answer is not for this sign-in (state)", provider=provider_id)
    if error or not code:
        return await refused(sso, request, f"{config.name} did not sign you in ({error or 'no code'})",
                             provider=provider_id)
    try:
        provider, keys = await sso.provider(config)
        answer = await sso.providers.http.post(provider.token_endpoint, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": sso.redirect_uri,
            "code_verifier": verifier, "client_id": config.client_id, "client_secret": client_secret(config)})
    except (ProviderUnavailable, httpx.HTTPError):
        return await refused(sso, request, f"{config.name} cannot be reached just now; try again in a few minutes",
                             status=503, provider=provider_id)
    if answer.status_code != 200:
        said = answer.json().get("error", answer.status_code) if "json" in answer.headers.get(
            "content-type", "") else answer.status_code
        return await refused(sso, request, f"{config.name} refused the code ({said})", provider=provider_id)
    try:
        id_token = str(answer.json().get("id_token", ""))
        claims = await check_id_token(id_token, issuer=config.issuer,
                                      client_id=config.client_id, keys=keys, nonce=str(nonce),
                                      now=sso.clock.now())
    except TokenRefused as exc:
        return await refused(sso, request, exc.reason, provider=provider_id)
    except ProviderUnavailable:
        return await refused(sso, request, f"{config.name} cannot be reached just now", status=503, provider=provider_id)
    if config.require_mfa and not mfa_used(claims, config.mfa_methods, config.mfa_acr_values):
        return await refused(sso, request, "your sign-in did not use a second factor (an authenticator app or key); "
                                      "Handoff requires one to show anyone's identity", status=403,
                             provider=provider_id)
    found = find_account(sso.sessions.reference, provider_id, claims)
    if found is None:
        return await refused(sso, request, "your account is not in Handoff's directory; ask your program's "
                                      "administrator", status=403, provider=provider_id)
    kind, principal_id = found
    role = role_of(sso.sessions.reference, kind, principal_id)
    granted = config.roles_granted(claims)
    if granted is not None and role not in granted:
        # Roles are the directory's; where a provider's groups are mapped, they must grant it too.
        return await refused(sso, request, f"your groups at {config.name} do not grant the role "
                                      f"{role.replace('_', ' ')}; ask your administrator", status=403,
                             provider=provider_id, user_id=principal_id)
    await sso.access.record(request, AccessEvent.signed_in, True, user_id=principal_id, user_kind=kind,
                        reason=f"via {provider_id}")
    # A page, not a redirect: the session cookie is SameSite=Strict, and a browser would not send it on a
    # redirect that a cross-site navigation (the provider's) began.
    going = html.escape(after_sign_in(then[0] if then else None))  # where the person was going before signing in
    response = HTMLResponse(f'<!doctype html><meta http-equiv="refresh" content="0;url={going}">'
                            f'<title>Signed in</title><p><a href="{going}">Continue</a></p>')
    set_session_cookie(response, sso.sessions, sso.sessions.cookie_for(kind, principal_id, (provider_id, id_token)))
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response
