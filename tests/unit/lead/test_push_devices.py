"""Push as a paging channel: a case manager turns push on for a device in the console (its PushSubscription, checked
and refused naming the field), the notifier pages every such device with a TTL that ends with the step, a device
its push service no longer knows is dropped, and someone whose only channel is push with no device on is passed
over at once, as an unreachable step is. In memory: fake channels, a fake clock, the HTTP app without a broker."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from services import runtime
from services.delivery.channels import PUSH_GONE, new_vapid_key, vapid_public_key
from services.kernel.events import Channel, DeliveryOutcome
from services.kernel.lead import PageSent
from services.kernel.push import PushSubscribed, PushUnsubscribed, device_id
from services.messaging.kafka import InMemoryPublisher
from tests.unit.lead.test_notifier_service import REF, T0, Harness


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def browser_subscription(endpoint: str = "https://push.example.net/send/dev-1") -> dict:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": b64url(point), "auth": b64url(b"a" * 16)}}


def device(person_id: str, endpoint: str) -> PushSubscribed:
    sub = browser_subscription(endpoint)
    return PushSubscribed(subscription_id=device_id(endpoint), person_id=person_id, endpoint=endpoint,
                          p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"], device="Chrome on Android",
                          subscribed_at=T0)


# --- the console --------------------------------------------------------------------------------------------
@pytest.fixture
async def console(memory_settings):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"),
                                                  "push_vapid_private_key": SecretStr(new_vapid_key())})
    publisher = InMemoryPublisher()
    app = runtime.build_http_app(settings, publisher=publisher, follow_topics=False)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.public_base_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})
        page = (await client.get("/console/my-referrals")).text
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        yield client, publisher, app.state, {"Origin": origin, "X-CSRF-Token": csrf, "Accept": "application/json",
                                             "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0"}, settings


async def test_a_case_manager_turns_push_on_for_a_device_lists_it_and_turns_it_off(console) -> None:
    client, publisher, state, headers, settings = console
    key = (await client.get("/console/push/key")).json()["application_server_key"]
    assert key == vapid_public_key(settings.push_vapid_private_key.get_secret_value())
    sub = browser_subscription()
    made = await client.post("/console/push/subscriptions", json=sub, headers=headers)
    assert made.status_code == 201 and made.json()["device"] == "Chrome on Android"
    [subscribed] = publisher.events(PushSubscribed)
    assert (subscribed.person_id, subscribed.endpoint) == ("cm-ana", sub["endpoint"])
    assert publisher.records[-1].key == f"cm-ana/{subscribed.subscription_id}"
    state.push_devices.apply(subscribed)  # as the API's follower would
    listed = (await client.get("/console/push/subscriptions")).json()["devices"]
    assert [d["subscription_id"] for d in listed] == [subscribed.subscription_id] and "endpoint" not in listed[0]
    gone = await client.delete(f"/console/push/subscriptions/{subscribed.subscription_id}", headers=headers)
    assert gone.status_code == 204 and publisher.events(PushUnsubscribed)[0].reason == "removed"
    other = await client.delete("/console/push/subscriptions/someone-elses", headers=headers)
    assert other.status_code == 404 and other.json()["errors"][0]["field"] == "subscription_id"


@pytest.mark.parametrize(("change", "field", "status"), [
    (lambda s, h: (s, {**h, "Origin": "https://evil.example"}), "Origin", 403),
    (lambda s, h: (s, {k: v for k, v in h.items() if k != "X-CSRF-Token"}), "csrf_token", 403),
    (lambda s, h: ({**s, "endpoint": "http://push.example.net/x"}, h), "endpoint", 422),
    (lambda s, h: ({**s, "endpoint": "http://127.0.0.1:9/x"}, h), "endpoint", 422),  # loopback: development only
    (lambda s, h: ({**s, "keys": {**s["keys"], "p256dh": b64url(b"\x04" + b"x" * 64)}}, h), "keys.p256dh", 422),
    (lambda s, h: ({**s, "keys": {**s["keys"], "auth": b64url(b"short")}}, h), "keys.auth", 422),
    (lambda s, h: ({**s, "keys": {"auth": s["keys"]["auth"]}}, h), "keys.p256dh", 422),
    (lambda s, h: ({"keys": s["keys"]}, h), "endpoint", 422),
])
async def test_a_subscription_that_is_not_what_a_browser_gives_from_the_console_is_refused_naming_why(
        console, change, field, status) -> None:
    client, publisher, _state, headers, _settings = console
    body, sent_with = change(browser_subscription(), headers)
    refused = await client.post("/console/push/subscriptions", json=body, headers=sent_with)
    assert refused.status_code == status and refused.json()["errors"][0]["field"] == field
    assert publisher.events(PushSubscribed) == []


async def test_push_cannot_be_turned_on_where_it_is_not_set_up(memory_settings) -> None:
    app = runtime.build_http_app(memory_settings.model_copy(update={"link_signing_key": SecretStr("k")}),
                                 publisher=InMemoryPublisher(), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})
        assert (await client.get("/console/push/key")).status_code == 404


# --- the notifier ---------------------------------------------------------------------------------------------
def with_push(*channels: Channel):
    """Every case manager paged on ``channels``."""
    return REF.model_copy(update={"case_managers": {
        cm_id: cm.model_copy(update={"channels": channels}) for cm_id, cm in REF.case_managers.items()}})


async def test_a_page_is_pushed_to_every_device_of_the_on_call_with_a_ttl_that_ends_with_the_step() -> None:
    h = Harness(reference=with_push(Channel.push, Channel.sms))
    for cm_id in REF.case_managers:
        for n in (1, 2):
            h.notifier.push_devices.apply(device(cm_id, f"https://push.example.net/{cm_id}/{n}"))
    await h.notifier.on_referral_event(h.referral)
    pushes = h.channels["push"].sent
    assert len(pushes) == 2 and len(h.channels["sms"].sent) == 1  # both devices, and the SMS beside them
    assert {json.loads(p.address)["endpoint"].rsplit("/", 1)[1] for p in pushes} == {"1", "2"}
    assert all(p.ttl_seconds == 5 * 60 and p.urgency == "high" and "/push-" in p.attempt_id for p in pushes)
    assert all("Zebulon" not in p.text for p in pushes)  # the minimum, as the SMS


async def test_a_device_its_push_service_no_longer_knows_is_dropped() -> None:
    h = Harness(reference=with_push(Channel.push, Channel.sms))
    erased: list[str] = []
    h.notifier.erase = erased.append
    for cm_id in REF.case_managers:
        h.notifier.push_devices.apply(device(cm_id, f"https://push.example.net/{cm_id}"))
    await h.notifier.on_referral_event(h.referral)
    [push] = h.channels["push"].sent
    cm_id = push.attempt_id.split("/")[3]
    await h.notifier.on_page_event(PageSent(
        page_id=push.attempt_id.split("/")[0], referral_id=h.referral.referral_id, attempt_id=push.attempt_id,
        step_index=0, loop=0, target_id=cm_id, channel=Channel.push, outcome=DeliveryOutcome.failed, attempt=1,
        error=f"{PUSH_GONE} (HTTP 410)", final=True, sent_at=T0))
    [dropped] = h.publisher.events(PushUnsubscribed)
    assert (dropped.person_id, dropped.reason) == (cm_id, "gone")
    assert erased == [f"{cm_id}/{dropped.subscription_id}"]  # its sealed endpoint and keys: unreadable everywhere


async def test_someone_reached_only_by_push_with_no_device_on_is_passed_over_at_once() -> None:
    h = Harness(reference=with_push(Channel.push))
    await h.notifier.on_referral_event(h.referral)
    assert h.channels["push"].sent == []
    # the first step could reach nobody: the page went on to the next step without waiting it out
    from services.kernel.lead import PageEscalated
    assert h.publisher.events(PageEscalated)


async def test_the_push_page_shows_each_step_of_the_persons_policy_and_their_quiet_hours(memory_settings) -> None:
    from datetime import time

    from services.kernel.reference import Availability, QuietHours

    ana = REF.case_managers["cm-ana"].model_copy(update={"quiet_hours": QuietHours(
        windows=(Availability(start=time(22), end=time(7)),), timezone="America/Denver")})
    reference = REF.model_copy(update={"case_managers": {**REF.case_managers, "cm-ana": ana}})
    app = runtime.build_http_app(memory_settings.model_copy(update={"link_signing_key": SecretStr("k")}), reference,
                                 InMemoryPublisher(), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})
        shown = (await client.get("/console/push")).text
    assert "every step is high urgency" in shown and "the on-call, by each person&#39;s own channels" in shown
    assert "5 minutes to acknowledge" in shown and "every day 22:00 to 07:00 (America/Denver)" in shown


async def test_a_warning_goes_to_each_device_with_push_on_at_low_urgency_and_never_rings() -> None:
    h = Harness(reference=with_push(Channel.push, Channel.voice, Channel.sms))
    h.notifier.push_devices.apply(device("cm-ben", "https://push.example.net/ben/1"))
    h.notifier.push_devices.apply(device("cm-ben", "https://push.example.net/ben/2"))
    await h.taken_by_ben_and_flagged()
    pushed = [m for m in h.channels["push"].sent if "intake deadline" in m.text]
    assert len(pushed) == 2 and {m.urgency for m in pushed} == {"low"}
    assert all("/push-" in m.attempt_id for m in pushed)
    assert [m for m in h.channels["voice"].sent if "intake" in m.attempt_id] == []  # a warning is read, not rung
