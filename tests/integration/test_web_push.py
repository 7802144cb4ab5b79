"""Web Push end to end over HTTP, with the standards' own libraries on both sides: Handoff's WebPushChannel encrypts
a page for a subscription (RFC 8291, pywebpush) and signs the request with its VAPID key (RFC 8292, py-vapid);
the dev inbox, acting as the push service and the phone behind it, checks the VAPID token with py-vapid and
decrypts the body with the subscription's private key (http_ece). A subscription the push service no longer
knows is refused for good, so it can be dropped."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from services.delivery.channels import (
    DeliveryFailed,
    DeliveryHttp,
    Outgoing,
    PushSubscriptionGone,
    WebPushChannel,
    new_vapid_key,
    push_topic,
)
from services.platform.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def inbox():
    inbox = DevInbox(free_port(), free_port()).start()
    yield inbox
    inbox.stop()



def page(address: str, attempt_id: str = "pg-r1/0/0/cm-ana/push", urgency: str = "high") -> Outgoing:
    return Outgoing(attempt_id, address, "LEAD page", "Warm handoff: referral r1 at Central & 5th. Ack: https://x/a",
                    "", {"type": "lead.page", "page_id": "pg-r1", "ack_url": "https://x/a"}, urgency=urgency,
                    ttl_seconds=300)


async def subscribe(inbox: DevInbox, client: httpx.AsyncClient) -> dict:
    answer = await client.post(f"{inbox.base_url}/push/subscriptions")
    assert answer.status_code == 201
    return answer.json()


async def test_a_page_pushed_with_handoffs_vapid_key_is_decrypted_by_the_phones_key(inbox) -> None:
    settings = Settings(push_vapid_private_key=SecretStr(new_vapid_key()), push_vapid_subject="mailto:ops@lead.test")
    async with httpx.AsyncClient() as client, DeliveryHttp(4, 10.0) as http:
        subscription = await subscribe(inbox, client)
        channel = WebPushChannel(settings, http)
        await channel.send(page(json.dumps(subscription)))

    [pushed] = inbox.inbox.of("push")
    assert pushed.subject == "LEAD page" and pushed.body.startswith("Warm handoff: referral r1")
    notification = json.loads(pushed.headers["notification"])
    assert notification["data"] == {"type": "lead.page", "page_id": "pg-r1", "ack_url": "https://x/a"}
    assert notification["tag"] == "pg-r1/0/0/cm-ana/push"
    assert pushed.headers["Urgency"] == "high" and pushed.headers["TTL"] == "300"
    assert pushed.idempotency_key == push_topic("pg-r1/0/0/cm-ana/push")


async def test_the_push_service_refuses_a_token_signed_by_another_key_and_a_subscription_it_no_longer_knows(inbox) -> None:
    settings = Settings(push_vapid_private_key=SecretStr(new_vapid_key()))
    async with httpx.AsyncClient() as client, DeliveryHttp(4, 10.0) as http:
        subscription = await subscribe(inbox, client)
        channel = WebPushChannel(settings, http)
        endpoint, body, headers = channel.request(page(json.dumps(subscription)))
        other = WebPushChannel(Settings(push_vapid_private_key=SecretStr(new_vapid_key())), http)
        forged = {**headers, "Authorization": headers["Authorization"].split(",k=")[0] + ",k="
                  + other.request(page(json.dumps(subscription)))[2]["Authorization"].split(",k=")[1]}
        assert (await client.post(endpoint, content=body, headers=forged)).status_code == 401
        no_ttl = {k: v for k, v in headers.items() if k != "TTL"}
        assert (await client.post(endpoint, content=body, headers=no_ttl)).status_code == 400

        await client.delete(f"{inbox.base_url}/push/subscriptions/{endpoint.rsplit('/', 1)[1]}")
        with pytest.raises(PushSubscriptionGone) as gone:
            await channel.send(page(json.dumps(subscription), attempt_id="pg-r1/0/1/cm-ana/push"))
        assert gone.value.permanent


async def test_push_without_a_vapid_key_or_with_a_broken_subscription_fails_for_good(inbox) -> None:
    async with httpx.AsyncClient() as client, DeliveryHttp(4, 10.0) as http:
        subscription = await subscribe(inbox, client)
        with pytest.raises(DeliveryFailed, match="not configured") as unconfigured:
            await WebPushChannel(Settings(), http).send(page(json.dumps(subscription)))
        assert unconfigured.value.permanent
        channel = WebPushChannel(Settings(push_vapid_private_key=SecretStr(new_vapid_key())), http)
        broken = {**subscription, "keys": {"p256dh": "bm90IGEga2V5", "auth": subscription["keys"]["auth"]}}
        with pytest.raises(DeliveryFailed, match="unusable") as unusable:
            await channel.send(page(json.dumps(broken)))
        assert unusable.value.permanent
