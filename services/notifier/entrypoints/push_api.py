"""Push from the console: a signed-in staff member turns Web Push on for a device (the console's service worker
subscribes with Handoff's VAPID key and hands its PushSubscription here), lists their devices, and turns one off.
Each change is an event on the push-subscriptions topic, which the notifier follows to page those devices.

JSON, for the console's own script: the session cookie says who, the ``X-CSRF-Token`` header carries the form
token, and the ``Origin`` must be the console's own. What is refused says which field and why, and changes
nothing."""

from __future__ import annotations

import binascii
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from services.delivery.channels import from_b64url, vapid_public_key
from services.kernel.push import MAX_DEVICES, PushDevices, PushSubscribed, PushUnsubscribed, device_id, device_key
from services.kernel.topics import PUSH_SUBSCRIPTIONS
from services.messaging.events import ErasureReason
from services.platform.settings import Settings
from services.web.console import ConsoleSessions, Viewer, local_time, page
from services.web.deps import AppClock, CaughtUp, Events, Reference, app_state
from services.web.web import ApiError, published_or_503

router = APIRouter(tags=["push"])
Devices = Annotated[PushDevices, Depends(app_state("push_devices"))]
AppSettings = Annotated[Settings, Depends(app_state("settings"))]
CSRF_HEADER = "X-CSRF-Token"
STAFF = ("case_manager", "outreach", "program_manager", "administrator")


def _unb64url(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ApiError(422, field, "required: base64url text")
    try:
        return from_b64url(value)
    except (binascii.Error, ValueError):
        raise ApiError(422, field, "not base64url") from None


def checked_subscription(body: Any, loopback_ok: bool) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a browser's PushSubscription, or ``ApiError`` naming the field: an https
    endpoint (loopback http in development), a P-256 public key and a 16-byte auth secret."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(body, dict):
        raise ApiError(422, "body", "a PushSubscription as JSON: endpoint and keys")
    endpoint, keys = body.get("endpoint"), body.get("keys")
    if not isinstance(endpoint, str) or len(endpoint) > 2048:
        raise ApiError(422, "endpoint", "required: the push service's URL, at most 2048 characters")
    parts = urlsplit(endpoint)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or (loopback_ok and loopback and parts.scheme == "http")):
        raise ApiError(422, "endpoint", "must be an https URL")
    if not isinstance(keys, dict):
        raise ApiError(422, "keys", "required: p256dh and auth")
    p256dh, auth = _unb64url(keys.get("p256dh"), "keys.p256dh"), _unb64url(keys.get("auth"), "keys.auth")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise ApiError(422, "keys.p256dh", "not a P-256 public key (65 bytes, uncompressed)") from None
    if len(auth) != 16:
        raise ApiError(422, "keys.auth", "must be 16 bytes")
    return endpoint, keys["p256dh"], keys["auth"]


def _signed_in_staff(request: Request, sessions: ConsoleSessions, settings: Settings, *, changes: bool) -> Viewer:
    viewer = sessions.require(request, *STAFF)
    if changes:
        sessions.check_csrf(viewer, request.headers.get(CSRF_HEADER, ""))
        origin = urlsplit(settings.public_base_url)
        if request.headers.get("Origin") != f"{origin.scheme}://{origin.netloc}":
            raise ApiError(403, "Origin", "push is turned on from Handoff's own console only")
    return viewer


def _device_name(user_agent: str) -> str:
    """What the console lists a device as: the browser and the system, not the whole user agent."""
    agent = user_agent.lower()
    browser = next((b for k, b in (("edg/", "Edge"), ("firefox", "Firefox"), ("chrome", "Chrome"),
                                   ("safari", "Safari")) if k in agent), "A browser")
    system = next((s for k, s in (("android", "Android"), ("iphone", "iPhone"), ("ipad", "iPad"),
                                  ("mac os", "macOS"), ("windows", "Windows"), ("linux", "Linux")) if k in agent), "")
    return f"{browser} on {system}" if system else browser


TEMPLATES = "services.notifier.entrypoints"  # its templates/ folder
_FILES = resources.files(TEMPLATES) / "templates" / "push"
# The installable console: a web app manifest, so that a phone can add Handoff to its home screen (which iOS needs
# before it allows push), and the service worker that shows a pushed page and acknowledges it.
MANIFEST = {"name": "Handoff", "short_name": "Handoff", "start_url": "/console", "scope": "/console/",
            "display": "standalone", "background_color": "#ffffff", "theme_color": "#1d4e89",
            "icons": [{"src": "/console/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"}]}


@router.get("/console/manifest.webmanifest", summary="The console as an installable web app")
async def manifest() -> JSONResponse:
    return JSONResponse(MANIFEST, media_type="application/manifest+json")


@router.get("/console/sw.js", summary="The console's service worker: pushed pages, and their Acknowledge button")
async def service_worker() -> Response:
    # no-cache: a new release reaches every phone on its next visit; scope /console/ (where the script is)
    return Response((_FILES / "sw.js").read_text(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/console/"})


@router.get("/console/icon.svg", summary="The console's icon")
async def icon() -> Response:
    return Response((_FILES / "icon.svg").read_text(), media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/console/push", response_class=HTMLResponse, summary="Push on this device: turn it on, list, turn off")
async def push_page(request: Request, sessions: ConsoleSessions, devices: Devices, reference: Reference) -> HTMLResponse:
    viewer = sessions.require(request, *STAFF)
    zone = next((reference.sites[s].zone for s in sorted(viewer.staff.sites) if s in reference.sites), None) \
        if viewer.staff else None
    shown = [{"subscription_id": d.subscription_id, "device": d.device, "since": local_time(d.subscribed_at, zone)}
             for d in devices.of(viewer.id)]
    return page("push/push.html", "Push on this device", viewer, package=TEMPLATES, devices=shown,
                policies=policies_of(viewer, reference), quiet=quiet_hours_of(viewer))


def _channels_said(channels) -> str:
    return " and ".join(c.value.upper() if c.value == "sms" else c.value for c in channels)


def policies_of(viewer: Viewer, reference) -> list[dict[str, Any]]:
    """Each of the viewer's sites' escalation policy, step by step: who, how, for how long; all high urgency."""
    out = []
    for site_id in sorted(viewer.staff.sites if viewer.staff else ()):
        site = reference.sites.get(site_id)
        if site is None:
            continue
        steps = [{"targets": ", ".join("the on-call" if t == "on_call" else getattr(reference.case_managers.get(t),
                                                                                    "display_name", t)
                                       for t in step.targets),
                  "how": _channels_said(step.channels) if step.channels else "each person's own channels",
                  "minutes": f"{step.escalate_after_minutes:g}"} for step in site.escalation.steps]
        out.append({"site": site.name, "steps": steps, "loops": site.escalation.loops})
    return out


def quiet_hours_of(viewer: Viewer) -> list[str]:
    """The viewer's quiet hours from the staff directory, in words."""
    quiet = viewer.staff.quiet_hours if viewer.staff else None
    if quiet is None:
        return []
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    return [f"{'every day' if len(w.days) == 7 else ', '.join(days[d] for d in sorted(w.days))} "
            f"{w.start:%H:%M} to {w.end:%H:%M} ({quiet.timezone})" for w in quiet.windows]


@router.get("/console/push/key", summary="Handoff's VAPID public key: the applicationServerKey a device subscribes with")
async def push_key(request: Request, sessions: ConsoleSessions, settings: AppSettings) -> JSONResponse:
    _signed_in_staff(request, sessions, settings, changes=False)
    key = settings.push_vapid_private_key
    if key is None:
        raise ApiError(404, "push", "push is not set up here (no VAPID key)")
    return JSONResponse({"application_server_key": vapid_public_key(key.get_secret_value())})


@router.get("/console/push/subscriptions", summary="My devices with push on")
async def my_devices(request: Request, sessions: ConsoleSessions, settings: AppSettings, devices: Devices) -> JSONResponse:
    viewer = _signed_in_staff(request, sessions, settings, changes=False)
    return JSONResponse({"devices": [{"subscription_id": d.subscription_id, "device": d.device,
                                      "subscribed_at": d.subscribed_at.isoformat()} for d in devices.of(viewer.id)]})


@router.post("/console/push/subscriptions", status_code=201, summary="Turn push on for this device")
async def subscribe(request: Request, sessions: ConsoleSessions, settings: AppSettings, devices: Devices,
                    publisher: Events, clock: AppClock, shown: CaughtUp) -> JSONResponse:
    viewer = _signed_in_staff(request, sessions, settings, changes=True)
    if settings.push_vapid_private_key is None:
        raise ApiError(404, "push", "push is not set up here (no VAPID key)")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(422, "body", "not JSON") from None
    endpoint, p256dh, auth = checked_subscription(body, settings.push_loopback_endpoints)
    subscription_id = device_id(endpoint)
    known = {d.subscription_id for d in devices.of(viewer.id)}
    if subscription_id not in known and len(known) >= MAX_DEVICES:
        raise ApiError(409, "endpoint", f"push is on for {MAX_DEVICES} devices already: turn one off first")
    event = PushSubscribed(subscription_id=subscription_id, person_id=viewer.id, endpoint=endpoint, p256dh=p256dh,
                           auth=auth, device=_device_name(request.headers.get("User-Agent", "")),
                           subscribed_at=clock.now())
    await published_or_503(publisher.publish(PUSH_SUBSCRIPTIONS, device_key(viewer.id, subscription_id), event),
                           settings.intake_publish_timeout_seconds, "push_subscription")
    await shown(PUSH_SUBSCRIPTIONS)
    return JSONResponse({"subscription_id": subscription_id, "device": event.device}, status_code=201)


@router.delete("/console/push/subscriptions/{subscription_id}", status_code=204, summary="Turn push off for a device")
async def unsubscribe(subscription_id: str, request: Request, sessions: ConsoleSessions, settings: AppSettings,
                      devices: Devices, publisher: Events, clock: AppClock, shown: CaughtUp) -> Response:
    viewer = _signed_in_staff(request, sessions, settings, changes=True)
    if subscription_id not in {d.subscription_id for d in devices.of(viewer.id)}:
        raise ApiError(404, "subscription_id", "not one of your devices")
    subject = device_key(viewer.id, subscription_id)
    await published_or_503(publisher.publish(
        PUSH_SUBSCRIPTIONS, subject,
        PushUnsubscribed(subscription_id=subscription_id, person_id=viewer.id, reason="removed",
                         unsubscribed_at=clock.now())), settings.intake_publish_timeout_seconds, "push_subscription")
    keys = request.app.state.keys
    if keys is not None:  # the device's endpoint and keys, in every copy of the topic, are unreadable from now
        await published_or_503(keys.destroy(subject, ErasureReason.consent_revoked, requested_by=viewer.id,
                                            note="push turned off for a device"),
                               settings.intake_publish_timeout_seconds, "push_subscription_key")
    await shown(PUSH_SUBSCRIPTIONS)
    return Response(status_code=204)
