"""The docker-compose files agree with the code they configure (Docker itself is not here to run them)."""

from __future__ import annotations

import yaml

from deploy.tls_certs import make_broker_certificates
from services.platform.settings import REPO_ROOT, Settings


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


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined), from the Dockerfile."""
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = []
        stages[current].append(line)
    return stages


def test_the_image_installs_locked_dependencies_before_the_source_without_dev_extras() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["deps", "runtime", "devtools"]
    deps = " ".join(stages["deps"])
    assert "COPY requirements/runtime.lock" in deps and "-r /tmp/runtime.lock" in deps
    assert "COPY services" not in deps  # a code change does not reinstall the dependencies
    runtime = " ".join(stages["runtime"])
    assert "COPY --from=deps /opt/venv /opt/venv" in runtime
    assert "[dev]" not in runtime and "dev.lock" not in runtime and "deploy" not in runtime
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime and ".ready" in runtime
    assert runtime.index("COPY --from=deps") < runtime.index("COPY services")
    for needed in ("services", "config"):
        assert f"COPY {needed} ./{needed}" in runtime
    assert "COPY schemas" not in runtime  # the codec's schemas come from the event models, not from files
    services = compose("docker-compose.yml")["services"]
    assert services["inbox"]["build"]["target"] == "devtools"
    assert all(s["build"]["target"] == "runtime" for name, s in services.items() if "build" in s and name != "inbox")


def test_the_wheel_holds_the_services_only() -> None:
    import tomllib

    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"]["find"]["include"] == ["services*"]  # bench/ and deploy/ stay in the checkout
    assert all(package.startswith("services") for package in setuptools["package-data"])


def test_the_lock_files_pin_every_dependency_pyproject_names() -> None:
    import re
    import tomllib

    def names(lock: str) -> dict[str, str]:
        lines = (REPO_ROOT / "requirements" / lock).read_text().splitlines()
        return {re.split(r"==", line)[0].lower().replace("_", "-"): line.split("==")[1]
                for line in lines if "==" in line and not line.startswith("#")}

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def wanted(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ;]", spec)[0].lower().replace("_", "-") for spec in specs}

    runtime, dev = names("runtime.lock"), names("dev.lock")
    assert wanted(project["dependencies"]) <= set(runtime), "runtime.lock misses a dependency"
    assert wanted(project["dependencies"]) | wanted(project["optional-dependencies"]["dev"]) <= set(dev)
    assert all(dev[name] == version for name, version in runtime.items()), "the two locks disagree"
