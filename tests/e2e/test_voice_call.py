"""A page's call end to end over HTTP, with the dev inbox as the voice provider: Handoff's VoiceChannel places the
call; the provider fetches the call's TwiML from Handoff's API (signed as the provider signs), which reads the page
out and gathers one key; pressing 1 posts the key back, signed, and the page is acknowledged by voice. The
provider's stand-in and Handoff check each other with Twilio's own library."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from services import runtime
from services.delivery.channels import DeliveryHttp, Outgoing, VoiceChannel
from services.kernel.events import AcknowledgedVia
from services.kernel.lead import PageAcknowledged, PageRequested
from services.messaging.kafka import InMemoryPublisher
from services.notifier.service import VOICE_PURPOSE
from tests.factories import NOW

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
TOKEN = "voice-test-auth-token"


async def test_a_call_reads_the_page_and_pressing_1_acknowledges_it(served, memory_settings) -> None:
    port = free_port()
    inbox = DevInbox(free_port(), free_port(), sms_auth_token=TOKEN).start()
    try:
        settings = memory_settings.model_copy(update={
            "link_signing_key": SecretStr("k"), "sms_auth_token": SecretStr(TOKEN),
            "public_base_url": f"http://127.0.0.1:{port}", "sms_api_base_url": inbox.base_url})
        publisher = InMemoryPublisher()
        app = runtime.build_http_app(settings, publisher=publisher, follow_topics=False)
        app.state.handoff_details.apply(PageRequested(
            page_id="pg-r-call", dedup_key="r-call", referral_id="r-call", site_id="abq",
            referral_type="social_contact", officer_name="Officer Marlowe", officer_callback_phone="+15055550177",
            location_description="the library steps", requested_at=NOW))
        await served(app, port)
        call_url = app.state.ack_links.url(VOICE_PURPOSE, "r-call", "cm-ana", "v1/voice")
        async with DeliveryHttp(1, 10.0) as http:
            await VoiceChannel(settings, http).send(Outgoing("pg-r-call/0/1/cm-ana/voice", "+15055550101", "", "", "",
                                                               {"call_url": call_url}))
        [rung] = inbox.inbox.of("voice")
        assert rung.to == "+15055550101" and "Officer Marlowe" in rung.body and "the library steps" in rung.body
        assert "Press 1 to take this referral" in rung.body
        async with httpx.AsyncClient() as phone:
            said = await phone.post(f"{inbox.base_url}/voice/{rung.headers['CallSid']}/press", data={"Digit": "1"})
        assert said.status_code == 200 and "The referral is yours" in said.text
        [ack] = publisher.events(PageAcknowledged)
        assert (ack.referral_id, ack.acknowledged_by, ack.via) == ("r-call", "cm-ana", AcknowledgedVia.voice)
    finally:
        inbox.stop()
