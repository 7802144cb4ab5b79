"""Shared fixtures: a real Kafka broker and schema registry for integration and e2e tests.

Broker, in this order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; testcontainers' Kafka if a Docker engine
answers; else the local launcher (deploy/local_stack.py, Maven Central artifacts, no Docker), as production runs
it: TLS and SASL/SCRAM only, one principal per service (and the API), ACLs for each test's topics. The first two
are brokers without sign-in: the tests then connect in plain text and grant nothing.
Registry likewise: ``SCHEMA_REGISTRY_URL``; an Apicurio container; else the local launcher.
Each test gets its own topic prefix, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.platform.settings import Settings
from tests.identity import LocalIdentityProvider

APICURIO_IMAGE = "apicurio/apicurio-registry:3.3.3"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class Broker:
    """The broker a test reaches, and how each process signs in to it: ``passwords`` (principal -> password) on a
    broker with TLS and SASL/SCRAM; TLS alone with only ``ca_file``; neither on a plain one."""

    bootstrap_servers: str
    ca_file: Path | None = None
    passwords: dict[str, str] | None = None

    def as_principal(self, settings: Settings, name: str = "admin") -> Settings:
        """``settings`` for a process that signs in as ``name`` (a service, the API, or the administrator)."""
        if not self.passwords:
            return settings.model_copy(update={
                "kafka_bootstrap_servers": self.bootstrap_servers, "kafka_ssl_cafile": self.ca_file,
                "kafka_security_protocol": "SSL" if self.ca_file else "PLAINTEXT"})
        return settings.model_copy(update={
            "kafka_bootstrap_servers": self.bootstrap_servers, "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": name,
            "kafka_sasl_password": SecretStr(self.passwords[name]), "kafka_ssl_cafile": self.ca_file})

    async def grant(self, admin: Settings) -> None:
        """Every service's ACLs for ``admin``'s topic prefix (as the administrator): what ``handoff topics acls``
        grants in production."""
        if self.passwords:
            from services.access import service_access
            from services.messaging.kafka import create_acls

            await create_acls(admin, [grant for access in service_access().values()
                                      for grant in access.grants(admin.topic_prefix)])


def broker_env(settings: Settings) -> dict[str, str]:
    """The environment a ``handoff`` process needs to reach the broker as ``settings`` do (its principal too)."""
    env = {"HANDOFF_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "HANDOFF_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol}
    if settings.kafka_sasl_username:
        env |= {"HANDOFF_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism or "",
                "HANDOFF_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
                "HANDOFF_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password.get_secret_value()}
    if settings.kafka_ssl_cafile:
        env["HANDOFF_KAFKA_SSL_CAFILE"] = str(settings.kafka_ssl_cafile)
    return env


def principals() -> list[str]:
    from services.access import service_access

    return ["admin", *service_access()]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Broker(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield Broker(kafka.get_bootstrap_server())
    else:
        from deploy.local_stack import LocalKafka

        passwords = {name: secrets.token_urlsafe(18) for name in principals()}
        with LocalKafka(scram_users=passwords) as kafka:
            _LOG_DIRS[:] = kafka.log_dirs
            yield Broker(kafka.bootstrap_servers, kafka.certificates.ca_file, passwords)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap_servers


_LOG_DIRS: list[Path] = []


@pytest.fixture(scope="session")
def kafka_log_dirs(kafka_bootstrap: str) -> list[Path]:
    """The session broker's log directories: the local broker's, or ``KAFKA_LOG_DIRS`` for one started apart."""
    dirs = [Path(d) for d in os.environ.get("KAFKA_LOG_DIRS", "").split(os.pathsep) if d] or _LOG_DIRS
    if not dirs:
        pytest.skip("the broker's log directories are not on this machine (a container's): set KAFKA_LOG_DIRS")
    return dirs


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        yield os.environ["SCHEMA_REGISTRY_URL"]
    elif _docker_answers():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        with DockerContainer(APICURIO_IMAGE).with_exposed_ports(8080) as registry:
            wait_for_logs(registry, "Installed features", timeout=120)
            yield f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}/apis/ccompat/v7"
    else:
        from deploy.local_stack import LocalRegistry

        with LocalRegistry() as registry:
            yield registry.url


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[LocalIdentityProvider]:
    """A real identity provider for the session: Keycloak from Maven Central on loopback, the demo realm
    (deploy/local/keycloak/handoff-realm.json) imported, and the SMART Backend Services client's public key,
    made here, registered (its private half stays with the tests)."""
    from deploy.local_stack import LocalKeycloak
    from deploy.local_system import SMART_CLIENT, new_signing_key
    from services.referral_intake.entrypoints.fhir_api import SYSTEM_SCOPES

    key = new_signing_key(f"tests-{uuid.uuid4().hex[:8]}")
    with LocalKeycloak(client_keys={SMART_CLIENT: {"keys": [key.as_dict(private=False)]}},
                       client_scopes={SMART_CLIENT: SYSTEM_SCOPES}) as keycloak:
        yield LocalIdentityProvider(keycloak.issuer, SMART_CLIENT, key)


@pytest.fixture(scope="session")
def keycloak_issuer(identity_provider) -> str:
    return identity_provider.issuer


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def broker_access(kafka_broker: Broker) -> Broker:
    """How the processes of a test sign in: the shared broker's (a test with a broker of its own overrides it)."""
    return kafka_broker


@pytest.fixture
def kafka_settings(broker_access: Broker, schema_registry_url: str, topic_prefix: str, tmp_path) -> Settings:
    """Settings for one integration test: the shared broker (as its administrator) and registry, private topics."""
    # console_access_codes: the development setting the console's browser tests sign in with (the identity
    # provider's sign-in has its own tests, against a real Keycloak)
    return broker_access.as_principal(Settings(
        schema_registry_url=schema_registry_url, console_access_codes=True, topic_prefix=topic_prefix,
        topic_partitions=2, data_dir=tmp_path / "var", processing_retry_base_seconds=0.01))


@pytest.fixture
def memory_settings(tmp_path) -> Settings:
    """Settings for unit tests: no broker, in-memory registry."""
    return Settings(schema_registry_url="memory://", data_dir=tmp_path / "var", processing_retry_base_seconds=0.001,
                    console_access_codes=True)


async def eventually(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
