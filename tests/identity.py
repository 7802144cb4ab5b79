"""Signing in at the local identity provider as a person would, without a browser: the provider's own
login page, the password, then the code from the person's authenticator app (pyotp, from the TOTP seed
the demo realm enrolls). The browser tests do the same in Chromium."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
from joserfc.jwk import ECKey

CONSOLE_CLIENT, CONSOLE_SECRET, PASSWORD = "handoff-console", "local-dev-console-secret", "local-dev-password"
CAD_CLIENT, CAD_SECRET = "cad-apd", "local-dev-cad-secret"  # the demo realm's; make run sets its own


@dataclass(frozen=True)
class LocalIdentityProvider:
    """The session's Keycloak: its issuer, and the SMART Backend Services client whose private key the tests hold."""

    issuer: str
    smart_client: str
    smart_key: ECKey

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"




def totp_seed(user: str) -> str:
    """The base32 seed an authenticator app takes for a demo user (deploy/local/keycloak/handoff-realm.json)."""
    return base64.b32encode(f"handoff-demo-totp-{user}".encode()).decode().rstrip("=")


_typed: dict[str, str] = {}  # user -> the last code typed in this test session


async def totp_code(user: str) -> str:
    """The code ``user``'s authenticator app shows now; if that one was typed already in this session, the next
    one (the provider refuses a code used twice, as it should, and tests sign in the same people)."""
    totp = pyotp.TOTP(totp_seed(user))
    code = totp.now()
    while code == _typed.get(user):
        await asyncio.sleep(totp.interval - time.time() % totp.interval + 0.2)
        code = totp.now()
    _typed[user] = code
    return code


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class ProviderSignIn:
    """One person at the provider's login pages. Keycloak marks its cookies Secure; a browser keeps them on
    http://127.0.0.1 (a secure context), httpx does not: this keeps them by hand."""

    http: httpx.AsyncClient
    cookies: dict

    async def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";")[0]
        return response

    def _cookie(self) -> dict:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, url: str, **params) -> httpx.Response:
        # httpx drops a URL's own query when given params, even empty ones
        return await self._keep(await self.http.get(url, params=params or None, headers=self._cookie()))

    async def submit(self, page: httpx.Response, **fields) -> httpx.Response:
        action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        return await self._keep(await self.http.post(action, data=fields, headers=self._cookie()))


async def authorization_code(issuer: str, user: str, redirect_uri: str, *, state: str, nonce: str, challenge: str,
                             otp: str | None = None, client_id: str = CONSOLE_CLIENT) -> str:
    """The code the provider sends back after ``user`` signs in with password and TOTP."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as http:
        person = ProviderSignIn(http, {})
        login = await person.get(f"{issuer}/protocol/openid-connect/auth", client_id=client_id, response_type="code",
                                 scope="openid email", redirect_uri=redirect_uri, state=state, nonce=nonce,
                                 code_challenge=challenge, code_challenge_method="S256")
        second = await person.submit(login, username=user, password=PASSWORD)
        done = await person.submit(second, otp=otp or await totp_code(user))
        location = done.headers.get("location", "")
        assert location.startswith(redirect_uri), f"the provider did not send the person back ({done.status_code})"
        query = parse_qs(urlparse(location).query)
        assert query["state"] == [state]
        return query["code"][0]
