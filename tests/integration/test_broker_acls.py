"""The broker lets each service reach only its own topics: TLS and SASL/SCRAM-SHA-512 on its only client listener,
one principal per service and one for the API, and ACLs from ``services.access`` (KRaft's StandardAuthorizer refuses
the rest). The shared test broker is set up so (tests/conftest.py); every flow test runs so too.
The referral intake and the notifier, each under its own principal, still turn a referral into a page; the
notifier's principal is refused the Handle With Care notices, and the refusal is logged."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from structlog.testing import capture_logs

from services.handle_with_care.events import HwcNoticeRequested
from services.handle_with_care.topics import HWC_NOTICES
from services.kernel.lead import PageRequested
from services.kernel.topics import PAGES
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, TopicAccessRefused, ensure_topics
from services.ops import read_topic
from services.runtime import TOPICS
from tests.conftest import Broker, eventually
from tests.integration.test_lead_flow import on_call, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))


@pytest.fixture(autouse=True)
def broker_with_sign_in(broker_access: Broker) -> None:
    if not broker_access.passwords:
        pytest.skip("the broker was started apart, without sign-in (KAFKA_BOOTSTRAP_SERVERS or a container)")


async def from_start(_consumer, partitions, _ends) -> dict:
    return dict.fromkeys(partitions, 0)


async def test_each_service_under_its_own_principal_turns_a_referral_into_a_page(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)  # each under its principal, the API too
    assert system.settings_of("notifier").kafka_sasl_username == "notifier"
    await submit(system, "CAD-ACL-1")
    sms = await eventually(lambda: system.messages("sms"), timeout=60)
    assert sms[0].to == on_call(system).phone


async def test_the_notifier_is_refused_the_notices_of_handle_with_care_and_the_refusal_is_logged(
        kafka_settings, broker_access) -> None:
    await ensure_topics(kafka_settings, TOPICS)
    await broker_access.grant(kafka_settings)
    notifier = broker_access.as_principal(kafka_settings, "notifier")
    assert await read_topic(notifier, PAGES, (PageRequested,), from_start) == []  # its own topic

    with capture_logs() as logs, pytest.raises(TopicAccessRefused):
        await read_topic(notifier, HWC_NOTICES, (HwcNoticeRequested,), from_start)
    refusals = [entry for entry in logs if entry["event"] == "topic_access_refused"]
    assert refusals and refusals[0]["topics"] == [HWC_NOTICES.qualified(kafka_settings.topic_prefix)]
    assert refusals[0]["log_level"] == "warning"

    publisher = KafkaPublisher(notifier, AvroCodec(registry_from_url(notifier.schema_registry_url)),
                               request_timeout_ms=5000)
    await publisher.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await publisher.publish(HWC_NOTICES, "n-1", _notice())
    finally:
        await publisher.stop()

    hwc = broker_access.as_principal(kafka_settings, "handle-with-care")
    assert await read_topic(hwc, HWC_NOTICES, (HwcNoticeRequested,), from_start) == []  # whose notices they are


def _notice() -> HwcNoticeRequested:
    from tests.factories import one_of_each

    return next(e for e in one_of_each() if isinstance(e, HwcNoticeRequested))
