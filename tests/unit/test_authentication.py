"""Every HTTP endpoint asks who is calling. Found by walking the app's routes, so a new route
without authentication fails here rather than ship."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import Route

from services import runtime
from services.messaging.kafka import InMemoryPublisher

# Authenticated by something other than a bearer token, each on purpose:
SIGNED_LINKS = re.compile(r"^/(ack|status|walk-in)/")  # the signed, expiring, single-purpose token in the URL is the credential
# the SMS and voice provider's request signature (X-Twilio-Signature)
SIGNED_BY_PROVIDER = {"/v1/sms/inbound", "/v1/voice/call/{token}", "/v1/voice/call/{token}/gather",
                      "/v1/voice/call/{token}/status"}
LIVENESS = {"/healthz"}  # answers {"status": "ok"} and nothing else, for orchestrators' probes
SIGN_IN_FORM = {("GET", "/console/login")}  # the console's sign-in page: where credentials are given
# Where a sign-in leaves for the identity provider (it names one: "x" is none, 404); the way back
# (/console/signed-in) needs the sign-in's own cookie, and answers the sign-in page without it.
TO_THE_PROVIDER = {("GET", "/console/sign-in/{provider_id}")}
PUBLIC_METADATA = {"/fhir/metadata"}  # FHIR clients read the CapabilityStatement before they authenticate
# ... and the SMART discovery document, to learn where to get a token (here the demo Keycloak is not running)
SMART_DISCOVERY = {"/fhir/.well-known/smart-configuration"}
# The installable console's own files: a browser fetches the manifest without cookies; none holds anything of anyone
APP_FILES = {"/console/manifest.webmanifest": "Handoff", "/console/sw.js": "notificationclick",
             "/console/icon.svg": "<svg"}
SECRET_FEEDS = {"/calendar/{token}.ics"}  # a calendar app sends no token: the signed URL is the credential (404 if not)


@pytest.fixture
def app(memory_settings):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    return runtime.build_http_app(settings, publisher=InMemoryPublisher(), follow_topics=False)


def endpoints(routes, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for route in routes:
        if isinstance(route, (APIRoute, Route)):
            found += [(method, prefix + route.path) for method in sorted(route.methods - {"HEAD", "OPTIONS"})]
        elif hasattr(route, "original_router"):  # an included router (FastAPI resolves them lazily)
            found += endpoints(route.original_router.routes, prefix)  # its routes' paths carry its prefix
    return found


async def test_every_endpoint_refuses_a_caller_without_credentials(app) -> None:
    checked = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for method, path in endpoints(app.routes):
            url = re.sub(r"\{[^}]+\}", "x", path)
            for headers in ({}, {"Authorization": "Bearer not-a-real-token"}):
                resp = await client.request(method, url, headers=headers, json={} if method == "POST" else None)
                if SIGNED_LINKS.match(path):
                    assert resp.status_code == 410, (method, path)  # an unsigned token is not a valid link
                elif path in PUBLIC_METADATA:
                    assert resp.status_code == 200 and resp.json()["resourceType"] == "CapabilityStatement"
                elif path in SMART_DISCOVERY:
                    assert resp.status_code == 503 and "identity provider cannot be reached" in resp.text
                elif path in APP_FILES:
                    assert resp.status_code == 200 and APP_FILES[path] in resp.text, (method, path)
                elif path in SECRET_FEEDS:
                    assert resp.status_code == 404, (method, path)
                elif path in SIGNED_BY_PROVIDER:
                    assert resp.status_code == 403, (method, path)
                elif path in LIVENESS:
                    assert resp.json() == {"status": "ok"}
                elif (method, path) in TO_THE_PROVIDER:
                    assert resp.status_code == 404 and "no such identity provider" in resp.text
                elif (method, path) in SIGN_IN_FORM:
                    assert resp.status_code == 200 and "access code" in resp.text
                elif path.startswith("/console"):  # browsers: a session cookie, else the sign-in page
                    assert resp.status_code == 401 and "Sign in" in resp.text, (method, path, resp.status_code)
                else:
                    assert resp.status_code == 401, (method, path, resp.status_code)
                    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, path)
            checked.append(path)
    assert {"/v1/referrals", "/v1/sites/{site_id}/funnel", "/openapi.json", "/docs", "/metrics",
            "/console/dashboard", "/console/notices/{notice_id}", "/console/triage"} <= set(checked)
