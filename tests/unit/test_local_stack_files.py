"""The local stack's own files: secrets kept across runs, reference data pointed at the inbox port,
and texts back from the dev inbox reaching Handoff's inbound SMS webhook, signed."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from deploy.dev_inbox import forward_sms_reply
from deploy.local_stack import KafkaNode, LocalKafka
from deploy.local_system import SECRETS, broker_passwords, local_secrets, reference_for_inbox
from deploy.tls_certs import BrokerCertificates
from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.lead import PageAcknowledged, PageRequested, PageSent
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT, Settings
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral


def test_secrets_are_made_once_and_kept_across_runs(tmp_path) -> None:
    first = {name: path.read_text() for name, path in local_secrets(tmp_path / "secrets").items()}
    again = {name: path.read_text() for name, path in local_secrets(tmp_path / "secrets").items()}
    assert first == again and len(set(first.values())) == len(SECRETS)
    assert all((tmp_path / "secrets" / name).stat().st_mode & 0o077 == 0 for name in first)
    links = runtime.ack_links(Settings(link_signing_key=SecretStr(first["link_signing_key"])))
    token = links.token("page", "r-1", "cm-ana")
    restarted = runtime.ack_links(Settings(link_signing_key=SecretStr(again["link_signing_key"])))
    assert restarted.verify("page", token) == ("r-1", "cm-ana")  # a link sent before a restart still works


def test_each_broker_principal_has_a_password_made_once_readable_only_by_its_owner(tmp_path) -> None:
    first = {name: path.read_text() for name, path in broker_passwords(tmp_path / "kafka").items()}
    again = {name: path.read_text() for name, path in broker_passwords(tmp_path / "kafka").items()}
    assert first == again  # the broker keeps the SCRAM credentials it was first started with
    assert set(first) == {"admin", "api", *runtime.WORKERS} and len(set(first.values())) == len(first)
    assert all((tmp_path / "kafka" / name).stat().st_mode & 0o077 == 0 for name in first)


def test_reference_data_points_at_the_inbox_port_of_the_run(tmp_path) -> None:
    directory = reference_for_inbox(REPO_ROOT / "config" / "local", tmp_path / "reference", "http://127.0.0.1:9125")
    data = load_reference_data(directory)
    assert data.case_managers["cm-cruz"].webhook_url == "http://127.0.0.1:9125/webhooks/outreach"
    assert data.schools["lincoln-es"].primary_contact.webhook_url == "http://127.0.0.1:9125/webhooks/sis"


async def test_a_text_back_from_the_dev_inbox_acknowledges_the_page(memory_settings) -> None:
    ref = load_reference_data(REPO_ROOT / "config" / "local")
    now = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    referral = open_referral(cad_referral(occurred_at=now), ref.sites["abq"], ref.agencies["apd"], now)
    model, publisher = LeadReadModel(), InMemoryPublisher()
    for event in (referral, PageRequested(page_id="pg", dedup_key=referral.referral_id, referral_id=referral.referral_id,
                                          site_id="abq", referral_type=referral.referral_type, officer_name="o",
                                          officer_callback_phone="+15055550143", location_description="x",
                                          requested_at=now),
                  PageSent(page_id="pg", referral_id=referral.referral_id, attempt_id="a", step_index=0, loop=0,
                           target_id="cm-ana", channel="sms", outcome="delivered", attempt=1, sent_at=now)):
        model.apply(event)
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"),
                                                  "sms_auth_token": SecretStr("local-sms-token"),
                                                  "public_base_url": "http://127.0.0.1:8080"})
    app = runtime.build_http_app(settings, ref, publisher, FakeClock(now), model, follow_topics=False)
    code = runtime.ack_links(settings).reply_code(referral.referral_id, "cm-ana")
    transport = httpx.ASGITransport(app=app)

    wrong = await forward_sms_reply("http://127.0.0.1:8080", "another-token", "+15055550101", f"ACK {code}", transport)
    assert wrong.status_code == 403
    resp = await forward_sms_reply("http://127.0.0.1:8080", "local-sms-token", "+15055550101", f"ACK {code}", transport)
    assert resp.status_code == 200 and "acknowledged" in resp.text
    [ack] = publisher.events(PageAcknowledged)
    assert ack.acknowledged_by == "cm-ana"


def test_stack_up_runs_with_the_reference_directory_handoff_reference_dir_names(tmp_path, monkeypatch) -> None:
    import shutil

    import pytest
    from typer.testing import CliRunner

    import deploy.local_system
    from services.cli import cli

    mine = tmp_path / "county"
    shutil.copytree(REPO_ROOT / "config" / "local", mine)
    asked: dict = {}
    monkeypatch.setattr(deploy.local_system, "run_local_system", lambda **kw: asked.update(kw) or 0)
    runner = CliRunner()
    assert runner.invoke(cli, ["stack", "up"], env={"HANDOFF_REFERENCE_DIR": str(mine)}).exit_code == 0
    assert asked["reference_dir"] == mine
    assert runner.invoke(cli, ["stack", "up"], env={"HANDOFF_REFERENCE_DIR": ""}).exit_code == 0
    assert asked["reference_dir"] == REPO_ROOT / "config" / "local"  # unset: the embedded default
    missing = runner.invoke(cli, ["stack", "up"], env={"HANDOFF_REFERENCE_DIR": str(tmp_path / "nowhere")})
    assert missing.exit_code == 2  # a usage error naming the option, before anything starts
    with pytest.raises(ValueError, match="own copy"):
        reference_for_inbox(tmp_path / "copy", tmp_path / "copy", "http://127.0.0.1:9")


def test_a_broker_with_sign_in_opens_no_plain_listener_to_clients(tmp_path) -> None:
    kafka = LocalKafka(scram_users={"admin": "a-password", "notifier": "n"}, work_dir=tmp_path,
                       nodes=[KafkaNode(1, 19999, 19998, tmp_path / "node-1", tls_port=19999)],
                       certificates=BrokerCertificates(tmp_path / "ca.pem", tmp_path / "broker.pem"))
    node = kafka.nodes[0]
    kafka._write_config(node)
    props = dict(line.split("=", 1) for line in node.config_file.read_text().splitlines())
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19999,CONTROLLER://127.0.0.1:19998"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19999"  # what clients are told to use
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["allow.everyone.if.no.acl.found"] == "false" and "StandardAuthorizer" in props["authorizer.class.name"]
    assert node.config_file.stat().st_mode & 0o077 == 0  # it holds the administrator's password
