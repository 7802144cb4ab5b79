"""The services over TLS: a broker with a TLS listener (private CA, from the launcher), clients with
HANDOFF_KAFKA_SECURITY_PROTOCOL=SSL and the CA file; a referral still becomes a page."""

from __future__ import annotations

import ssl
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer

from deploy.local_stack import LocalKafka
from tests.conftest import Broker, eventually
from tests.integration.test_lead_flow import on_call, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    with LocalKafka(tls=True, work_dir=tmp_path_factory.mktemp("tls-kafka"), heap="384m") as kafka:
        yield kafka


@pytest.fixture
def broker_access(tls_broker) -> Broker:
    """Overrides the shared broker: this module's clients speak TLS only."""
    return Broker(tls_broker.tls_bootstrap_servers, tls_broker.certificates.ca_file)


async def test_referral_to_page_over_tls(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-TLS-1")
    sms = await eventually(lambda: system.messages("sms"))
    assert sms[0].to == on_call(system).phone


async def test_a_client_that_does_not_trust_the_ca_is_refused(tls_broker) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=tls_broker.tls_bootstrap_servers, security_protocol="SSL",
                                ssl_context=ssl.create_default_context(), request_timeout_ms=5000)
    with pytest.raises(Exception):  # noqa: B017  (aiokafka wraps the handshake failure variously)
        await producer.start()
    await producer.stop()
