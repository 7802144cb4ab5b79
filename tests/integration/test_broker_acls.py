"""The broker lets each service reach only its own topics: TLS and SASL/SCRAM-SHA-512 on the client listener,
one principal per service, and ACLs from ``services.access`` (KRaft's StandardAuthorizer refuses the rest).
The referral intake and the notifier, each under its own principal, still turn a referral into a page; the
notifier's principal is refused the Handle With Care notices, and the refusal is logged."""

from __future__ import annotations

import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr
from structlog.testing import capture_logs

from deploy.local_stack import LocalKafka
from services import runtime
from services.access import service_access
from services.handle_with_care.events import HwcNoticeRequested
from services.handle_with_care.topics import HWC_NOTICES
from services.kernel.lead import PageRequested
from services.kernel.topics import PAGES
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, TopicAccessRefused, create_acls, ensure_topics
from services.messaging.streams import prepare_and_start
from services.ops import read_topic
from services.platform.settings import Settings
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.integration.test_lead_flow import on_call, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
PASSWORDS = {name: secrets.token_urlsafe(18) for name in ("admin", *service_access())}


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    with LocalKafka(scram_users=PASSWORDS, work_dir=tmp_path_factory.mktemp("acl-kafka"), heap="384m") as kafka:
        yield kafka


def as_principal(broker: LocalKafka, name: str, settings: Settings) -> Settings:
    return settings.model_copy(update={
        "kafka_bootstrap_servers": broker.tls_bootstrap_servers, "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": name,
        "kafka_sasl_password": SecretStr(PASSWORDS[name]), "kafka_ssl_cafile": broker.certificates.ca_file})


@pytest.fixture
async def kafka_settings(acl_broker, schema_registry_url, topic_prefix, tmp_path) -> Settings:
    """Overrides the shared broker: the administrator's settings (the HTTP app runs as it: the API has no
    principal of its own yet). Creates the topics and grants every service its ACLs."""
    admin = as_principal(acl_broker, "admin", Settings(
        schema_registry_url=schema_registry_url, topic_prefix=topic_prefix, topic_partitions=2,
        data_dir=tmp_path / "var", processing_retry_base_seconds=0.01))
    await ensure_topics(admin, TOPICS)
    await create_acls(admin, [grant for access in service_access().values() for grant in access.grants(topic_prefix)])
    return admin


async def from_start(_consumer, partitions, _ends) -> dict:
    return dict.fromkeys(partitions, 0)


async def test_each_service_under_its_own_principal_turns_a_referral_into_a_page(system_factory, acl_broker) -> None:
    system = await system_factory(now=NOW)
    for name in ("referral-intake", "notifier"):
        settings = as_principal(acl_broker, name, system.settings)
        worker = runtime.build_worker(name, settings, system.reference, system.clock)
        await prepare_and_start(worker, settings, TOPICS)  # creates and checks only what its principal may
        system.started.append(worker.stop)
        system.apps[name] = worker
    await submit(system, "CAD-ACL-1")
    sms = await eventually(lambda: system.messages("sms"), timeout=60)
    assert sms[0].to == on_call(system).phone


async def test_the_notifier_is_refused_the_notices_of_handle_with_care_and_the_refusal_is_logged(
        kafka_settings, acl_broker) -> None:
    notifier = as_principal(acl_broker, "notifier", kafka_settings)
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

    hwc = as_principal(acl_broker, "handle-with-care", kafka_settings)
    assert await read_topic(hwc, HWC_NOTICES, (HwcNoticeRequested,), from_start) == []  # whose notices they are


def _notice() -> HwcNoticeRequested:
    from tests.factories import one_of_each

    return next(e for e in one_of_each() if isinstance(e, HwcNoticeRequested))
