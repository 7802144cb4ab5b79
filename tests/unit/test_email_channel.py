"""The email channel keeps SMTP connections open and reuses them, and recovers from one the server
dropped. Against a real SMTP server (the dev inbox's aiosmtpd handler) on loopback."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from deploy.dev_inbox import Inbox, _SmtpHandler
from deploy.local_stack import free_port
from services.delivery.channels import DeliveryFailed, EmailChannel, Outgoing
from services.platform.settings import Settings


def mail(i: int) -> Outgoing:
    return Outgoing(f"attempt-{i}", "counselor@school.example.org", "Handle With Care", "text", f"body {i}", {})


@pytest.fixture
def smtp():
    inbox, port = Inbox(), free_port()
    server = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=port)
    server.start()
    yield inbox, server, port
    server.stop()


async def test_messages_share_a_connection(smtp) -> None:
    inbox, _server, port = smtp
    channel = EmailChannel(Settings(smtp_port=port), pool_size=2)
    for i in range(5):
        await channel.send(mail(i))
    await channel.close()
    assert channel.connections_opened == 1
    assert [m.body.strip() for m in inbox.of("email")] == [f"body {i}" for i in range(5)]


async def test_a_connection_the_server_dropped_is_replaced() -> None:
    inbox, port = Inbox(), free_port()
    channel = EmailChannel(Settings(smtp_port=port))
    server = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=port)
    server.start()
    try:
        await channel.send(mail(1))
    finally:
        server.stop()  # drops the idle connection
    server = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=port)
    server.start()
    try:
        await channel.send(mail(2))
        await channel.close()
    finally:
        server.stop()
    assert channel.connections_opened == 2
    assert len(inbox.of("email")) == 2


async def test_a_refusal_fails_the_attempt_and_the_next_one_goes_through(smtp) -> None:
    inbox, _server, port = smtp
    channel = EmailChannel(Settings(smtp_port=port))
    inbox.fail_next["email"] = 1
    with pytest.raises(DeliveryFailed) as failed:
        await channel.send(mail(1))
    assert not failed.value.permanent
    await channel.send(mail(1))
    await channel.close()
    assert len(inbox.of("email")) == 1


def test_the_message_reads_back_as_sent() -> None:
    from email import message_from_bytes
    from email.policy import default

    out = Outgoing("n-1/primary/c/email", "director@sunrise.example.org", "Handle With Care: Día de los niños",
                   "", "Bonjour,\nun élève de l'école…\n", {})
    parsed = message_from_bytes(EmailChannel(Settings()).compose(out).as_bytes(), policy=default)
    assert parsed["Subject"] == out.subject
    assert parsed["X-Handoff-Delivery"] == out.attempt_id
    assert parsed.get_body(preferencelist=("plain",)).get_content() == out.body
