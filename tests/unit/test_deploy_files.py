"""The docker-compose files agree with the code they configure (Docker itself is not here to run them)."""

from __future__ import annotations

import yaml

from deploy.tls_certs import make_broker_certificates
from services.core.settings import REPO_ROOT, Settings


def compose(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def test_tls_example_layers_on_existing_services_and_uses_the_files_tls_certs_makes(tmp_path) -> None:
    base, tls = compose("docker-compose.yml"), compose("deploy/compose.tls.yml")
    assert set(tls["services"]) <= set(base["services"])
    made = make_broker_certificates(tmp_path / "tls", ("kafka", "localhost"))
    mounts = [v.split(":")[0] for s in tls["services"].values() for v in s.get("volumes", [])]
    assert {m.rsplit("/", 1)[1] for m in mounts} == {made.ca_file.name, made.keystore_file.name}
    assert all(m.startswith("./deploy/tls/") for m in mounts)  # relative to the first file: the repo root
    for name, service in tls["services"].items():
        if name == "kafka":
            continue
        settings = Settings(**{k.removeprefix("HANDOFF_").lower(): v for k, v in service["environment"].items()
                               if k != "HANDOFF_KAFKA_SSL_CAFILE"})
        assert settings.kafka_security_protocol == "SSL" and settings.kafka_bootstrap_servers == "kafka:9094"
    assert "BEGIN PRIVATE KEY" in made.keystore_file.read_text()  # PKCS#8, as Kafka's PEM keystore wants
