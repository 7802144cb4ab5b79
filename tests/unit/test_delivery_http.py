"""The channels' HTTP client against a real HTTP server on loopback: what it posts, what it refuses to follow, and
how a send that got no answer fails."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web

from deploy.local_stack import free_port
from services.delivery.channels import (
    DeliveryFailed,
    DeliveryHttp,
    Outgoing,
    SmsChannel,
    WebhookChannel,
    verify_webhook,
)
from services.platform.settings import Settings


class Receiver:
    """A loopback server recording each request: a provider, a webhook endpoint, and one that redirects."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.flood_ended = ""
        self.port = free_port()
        app = web.Application()
        app.router.add_post("/redirect", self.redirect)
        app.router.add_post("/silent", self.silent)
        app.router.add_post("/flood", self.flood)
        app.router.add_post("/{tail:.*}", self.answer)
        self.runner = web.AppRunner(app)

    async def answer(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.headers), await request.read()))
        return web.json_response({"sid": "SM1"}, status=201)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{self.port}/inside")

    async def silent(self, request: web.Request) -> web.Response:
        await asyncio.sleep(2)  # accepts, and answers only after the client has given up (0.5 s)
        return web.Response()

    async def flood(self, request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(status=200)
        await answer.prepare(request)
        try:
            for _ in range(1024):  # 64 MiB, if the client read it all
                await answer.write(b"x" * 65536)
            self.flood_ended = "all sent"
        except (ConnectionError, OSError):
            self.flood_ended = "cut off by the client"
        return answer

    async def __aenter__(self) -> Receiver:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.runner.cleanup()


async def test_an_sms_is_a_form_post_with_basic_auth_and_the_attempt_as_idempotency_token() -> None:
    async with Receiver() as receiver, DeliveryHttp(4, 5.0) as http:
        settings = Settings(sms_api_base_url=f"http://127.0.0.1:{receiver.port}")
        await SmsChannel(settings, http).send(Outgoing("att-1", "+15055550100", "", "Warm handoff", "", {}))
    [(path, headers, body)] = receiver.seen
    assert path == f"/2010-04-01/Accounts/{settings.sms_account_sid}/Messages.json"
    user, _, password = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode().partition(":")
    assert (user, password) == (settings.sms_account_sid, settings.sms_auth_token.get_secret_value())
    assert headers["I-Twilio-Idempotency-Token"] == "att-1"
    assert body == b"To=%2B15055550100&Body=Warm+handoff&From=" + settings.sms_from_number.replace("+", "%2B").encode()


async def test_a_webhook_is_signed_json_and_a_redirect_is_not_followed() -> None:
    async with Receiver() as receiver, DeliveryHttp(4, 5.0) as http:
        settings = Settings()
        channel = WebhookChannel(settings, http)
        await channel.send(Outgoing("att-2", f"http://127.0.0.1:{receiver.port}/hook", "", "", "", {"a": 1}))
        with pytest.raises(DeliveryFailed, match="redirected with HTTP 307") as redirected:  # not into the network
            await channel.send(Outgoing("att-3", f"http://127.0.0.1:{receiver.port}/redirect", "", "", "", {"a": 1}))
    assert redirected.value.permanent  # the endpoint's address needs fixing: trying again cannot help
    [(path, headers, body)] = receiver.seen
    assert path == "/hook" and body == b'{"a":1}' and headers["Idempotency-Key"] == "att-2"
    assert verify_webhook(settings.webhook_signing_secret.get_secret_value(), headers["X-Handoff-Signature"], body)


async def test_no_answer_is_a_failure_that_may_be_tried_again() -> None:
    async with DeliveryHttp(4, 2.0) as http:
        with pytest.raises(DeliveryFailed, match="webhook unreachable: ClientConnectorError") as failed:
            await WebhookChannel(Settings(), http).send(
                Outgoing("att-4", f"http://127.0.0.1:{free_port()}/hook", "", "", "", {}))
    assert failed.value.permanent is False


async def test_an_endpoint_that_never_answers_or_answers_without_end_costs_a_bounded_wait_and_little_memory() -> None:
    async with Receiver() as receiver, DeliveryHttp(4, 0.5) as http:
        channel = WebhookChannel(Settings(), http)
        with pytest.raises(DeliveryFailed, match="webhook unreachable") as silent:
            await channel.send(Outgoing("att-5", f"http://127.0.0.1:{receiver.port}/silent", "", "", "", {}))
        assert not silent.value.permanent  # tried again later, as a send with no answer is
        await channel.send(Outgoing("att-6", f"http://127.0.0.1:{receiver.port}/flood", "", "", "", {}))  # 200: sent
    assert receiver.flood_ended == "cut off by the client"  # 64 KiB read, then the connection closed
