"""The whole system on one machine, no Docker: what ``handoff stack up`` runs.

Kafka (TLS and SASL/SCRAM only: each service and the API sign in as themselves, with the ACLs of
``services.access``; passwords in ``secrets/kafka/``), Apicurio Registry and Keycloak (the identity provider,
on 127.0.0.1:8180, the client secret set from ``secrets/``) from the local launcher; topics, grants and schemas;
the dev inbox (local SMS/webhook/SMTP receivers); the HTTP API and the three workers as separate processes; then the
sample CAD events from config/local/demo. Secrets (link signing key, webhook secret, SMS auth token)
are made on the first run and kept in the work dir (``secrets/``, mode 0600, outside the repo), so
links and SMS reply codes sent before a restart still work after it. The reference data
(``reference_dir``: config/local unless ``HANDOFF_REFERENCE_DIR`` or ``--reference-dir`` names
another) is loaded from a copy whose receiver URLs point at this run's dev inbox port.
Ctrl-C stops everything, workers first, and leaves no JVM behind.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from deploy.local_stack import LocalKafka, LocalKeycloak, LocalRegistry, _die_with_parent, _stop_process
from deploy.supervisor import GaveUp, Supervisor
from services.delivery.channels import new_vapid_key
from services.platform.settings import REPO_ROOT
from services.referral_intake.entrypoints.fhir_api import SYSTEM_SCOPES
from services.runtime import WORKERS  # the composition root names every worker once

DEMO_DIR = REPO_ROOT / "config" / "local" / "demo"
DEMO_TOKEN = "local-dev-token-apd"  # its hash is in config/local/agencies.toml; local demo only


def _say(message: str) -> None:
    print(f"[handoff] {message}", flush=True)


ONE_PROCESS = "services"  # the process that runs them all, in the logs and the supervisor


def run_local_system(kafka_port: int = 9092, registry_port: int = 8081, http_port: int = 8080, inbox_port: int = 8025,
                     smtp_port: int = 8026, demo: bool = True, work_dir: Path = Path("var/local-stack"),
                     reference_dir: Path = REPO_ROOT / "config" / "local", one_process: bool = True) -> int:
    started = time.monotonic()
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # handled below, once we're up
    principals = broker_passwords(work_dir / "secrets" / "kafka")
    # TLS and SASL/SCRAM only, each service (and the API) under its own principal with its ACLs, as in production
    kafka = LocalKafka(port=kafka_port, work_dir=work_dir / "kafka",
                       scram_users={name: path.read_text() for name, path in principals.items()})
    registry = LocalRegistry(port=registry_port, work_dir=work_dir / "registry")
    keycloak = LocalKeycloak(port=KEYCLOAK_PORT, work_dir=work_dir / "keycloak")
    logs = work_dir / "logs"

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        out = (logs / f"{name}.log").open("ab")
        return subprocess.Popen(argv, env=signed_in_as(name), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def signed_in_as(name: str) -> dict[str, str]:
        """The environment of a process that reaches the broker as ``name`` (the dev inbox does not at all)."""
        if name == ONE_PROCESS:  # each service in it signs in as itself, its password in this directory
            return {**{k: v for k, v in env.items() if not k.startswith(("HANDOFF_KAFKA_SASL_USERNAME",
                                                                          "HANDOFF_KAFKA_SASL_PASSWORD"))},
                    "HANDOFF_KAFKA_SASL_PASSWORD_DIR": str(work_dir / "secrets" / "kafka")}
        if name not in principals:
            return {k: v for k, v in env.items() if not k.startswith("HANDOFF_KAFKA_SASL")}
        return {**env, "HANDOFF_KAFKA_SASL_USERNAME": name, "HANDOFF_KAFKA_SASL_PASSWORD_FILE": str(principals[name])}

    services = Supervisor(start, _say)
    env: dict[str, str] = {}
    try:
        _say("starting Kafka (first run downloads it from Maven Central) ...")
        bootstrap = kafka.start()
        _say(f"Kafka ready on {bootstrap}; starting Apicurio Registry ...")
        registry_url = registry.start()
        keys = local_secrets(work_dir / "secrets")
        _say("starting Keycloak, the identity provider people sign in with (first run downloads it) ...")
        keycloak.client_secrets = {"handoff-console": keys["oidc_secret_keycloak_local"].read_text(),
                                   "cad-apd": keys["cad_client_secret"].read_text()}
        smart_key = signing_key(work_dir / "secrets" / f"{SMART_CLIENT}.jwk")
        keycloak.client_keys = {SMART_CLIENT: {"keys": [smart_key.as_dict(private=False)]}}
        keycloak.client_scopes = {SMART_CLIENT: SYSTEM_SCOPES}
        _say(f"Keycloak ready: {keycloak.start()} (README: the demo users and their TOTP seeds)")
        webhook_secret = keys["webhook_signing_secret"].read_text()
        reference_copy = reference_for_inbox(reference_dir, work_dir / "reference", f"http://127.0.0.1:{inbox_port}")
        env.update({**os.environ,
               "HANDOFF_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "HANDOFF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
               "HANDOFF_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
               "HANDOFF_KAFKA_SSL_CAFILE": str(kafka.certificates.ca_file),
               "HANDOFF_SCHEMA_REGISTRY_URL": registry_url,
               "HANDOFF_DATA_DIR": str(work_dir / "data"), "HANDOFF_HTTP_PORT": str(http_port),
               "HANDOFF_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
               "HANDOFF_SMS_API_BASE_URL": f"http://127.0.0.1:{inbox_port}", "HANDOFF_SMTP_PORT": str(smtp_port),
               **{f"HANDOFF_{name.upper()}_FILE": str(path) for name, path in keys.items()},
               "HANDOFF_REFERENCE_DIR": str(reference_copy),
               "HANDOFF_LOG_FORMAT": "json", "HANDOFF_REFERENCE_SOURCE": "kafka"})
        for name in (*keys, "kafka_sasl_password"):  # the files, not a stale value from the caller's environment
            env.pop(f"HANDOFF_{name.upper()}", None)
        handoff = [sys.executable, "-m", "services.cli"]
        for step in (["topics", "create"], ["topics", "acls"], ["schemas", "register"], ["reference", "load"]):
            subprocess.run([*handoff, *step], env=signed_in_as("admin"), check=True, stdout=subprocess.DEVNULL)
        _say(f"registry ready on {registry_url}; topics created and each service granted its own, schemas "
             "registered, reference data loaded")

        logs.mkdir(exist_ok=True)
        spawn = services.add
        spawn("inbox", [sys.executable, "-m", "deploy.dev_inbox", "--http-port", str(inbox_port), "--smtp-port",
                        str(smtp_port), "--webhook-secret", webhook_secret, "--out-dir", str(work_dir / "inbox"),
                        "--sms-replies-to", f"http://127.0.0.1:{http_port}",
                        "--sms-auth-token-file", str(keys["sms_auth_token"])])
        ready_dir = work_dir / "data" / "run"
        workers: tuple[str, ...] = ()
        if one_process:  # a small site's layout: every service and the API in one process (handoff run all)
            spawn(ONE_PROCESS, [*handoff, "run", "all"])  # its API answers once every worker has started
        else:
            spawn("api", [*handoff, "run", "api"])
            workers = WORKERS
            for worker in workers:
                (ready_dir / f"{worker}.ready").unlink(missing_ok=True)
                spawn(worker, [*handoff, "run", worker])
        _wait_until(lambda: _http_ok(f"http://127.0.0.1:{http_port}/healthz") and _http_ok(f"http://127.0.0.1:{inbox_port}/messages")
                    and all((ready_dir / f"{w}.ready").exists() for w in workers), services.processes, timeout=90)
        _say(f"all services up in {time.monotonic() - started:.0f}s; logs in {logs}")
        _say(f"  API: http://127.0.0.1:{http_port}  (OpenAPI at /docs with a bearer token)    "
             f"dev inbox: http://127.0.0.1:{inbox_port}/")
        _say(f"  console: http://127.0.0.1:{http_port}/console  (sign in with a demo user, e.g. cm-ben, password "
             "local-dev-password, and the code of its TOTP seed: README)")
        if demo:
            _send_demo(http_port)
            _watch_inbox(inbox_port, services.processes)
        _say("running; press Ctrl-C to stop")
        while True:
            received = signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, 1.0)
            if received is not None:
                break
            try:
                services.check()  # a crashed service is restarted (with backoff), as a deployment's would be
            except GaveUp as exc:
                _say(f"{exc}; see {logs}")
                return 1
        return 0
    finally:
        _say("stopping ...")
        services.stop_all(lambda proc: _stop_process(proc, timeout=20))
        keycloak.stop()
        registry.stop()
        kafka.stop()
        _say("stopped")


# name -> how it is made: random bytes (hex) of that many, or a key's own maker. oidc_secret_keycloak_local is
# Handoff's client secret at the local Keycloak (identity_providers.toml); cad_client_secret the demo CAD's
# client-credentials secret there (client cad-apd); push_vapid_private_key Handoff's Web Push key (RFC 8292).
SECRETS: dict[str, int | Callable[[], str]] = {
    "link_signing_key": 32, "webhook_signing_secret": 16, "sms_auth_token": 16, "oidc_secret_keycloak_local": 24,
    "cad_client_secret": 24, "push_vapid_private_key": new_vapid_key}
SMART_CLIENT = "fhir-abq-cm"  # the demo case-management system's SMART Backend Services client (organizations.toml)
KEYCLOAK_PORT = 8180  # config/local/identity_providers.toml names this issuer


def local_secrets(directory: Path) -> dict[str, Path]:
    """The local stack's secrets as files: made once, kept across runs (a new link-signing key on
    every start would void every link and SMS reply code sent before it, while escalations go on)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = {}
    for name, made in SECRETS.items():
        path = paths[name] = directory / name
        if not path.exists() or not path.read_text().strip():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(made) if isinstance(made, int) else made())
    return paths


def broker_passwords(directory: Path) -> dict[str, Path]:
    """A password file per broker principal (the administrator, each service, the API): made once, kept, since
    the broker keeps their SCRAM credentials from its first start."""
    from services.access import service_access

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = {}
    for name in ("admin", *service_access()):
        path = paths[name] = directory / name
        if not path.exists() or not path.read_text().strip():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
    return paths


def new_signing_key(kid: str):
    """A SMART Backend Services client's private key: EC P-384 for ES384, which every SMART server accepts."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-384", parameters={"kid": kid, "use": "sig", "alg": "ES384"}, private=True)


def signing_key(path: Path):
    """The demo client's key, made once and kept in ``path`` as a JWK: what a case-management system would
    hold; Keycloak gets only its public half."""
    from joserfc.jwk import ECKey

    if path.exists():
        return ECKey.import_key(json.loads(path.read_text()))
    key = new_signing_key(f"{path.stem}-1")
    path.touch(mode=0o600)
    path.write_text(json.dumps(key.as_dict(private=True)))
    return key


LOCAL_INBOX = "http://127.0.0.1:8025"  # where config/local's webhook URLs point


def reference_for_inbox(source: Path, target: Path, inbox_url: str) -> Path:
    """A copy of the reference directory ``source`` whose receiver URLs point at ``inbox_url``."""
    import shutil

    if source.resolve() == target.resolve():
        raise ValueError(f"the reference directory {source} is this run's own copy: name the one it was made from")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("demo"))
    for path in target.rglob("*.toml"):
        path.write_text(path.read_text().replace(LOCAL_INBOX, inbox_url))
    return target


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(predicate, children, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [name for name, proc in children if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during start-up; see var/local-stack/logs")
        if time.monotonic() > deadline:
            raise RuntimeError(f"services not ready after {timeout}s; see var/local-stack/logs")
        time.sleep(0.3)


def _send_demo(http_port: int) -> None:
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    stamp = str(int(time.time()))  # fresh CAD event ids each run, so each run pages anew
    now = datetime.now(UTC).isoformat()  # the intake refuses event times far from now
    for path, name, when in (("/v1/referrals", "referral.json", "occurred_at"),
                             ("/v1/child-encounters", "child-encounter.json", "encountered_at")):
        body = json.loads((DEMO_DIR / name).read_text())
        body["cad_event_id"] = f"{body['cad_event_id']}-{stamp}"
        body[when] = now
        resp = httpx.post(f"http://127.0.0.1:{http_port}{path}", json=body, headers=headers, timeout=10)
        _say(f"sample CAD event POST {path}: HTTP {resp.status_code} {resp.text}")


def _watch_inbox(inbox_port: int, children, timeout: float = 30.0) -> None:
    """Report the first page and notice as they reach the dev inbox."""
    deadline, seen = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        messages = httpx.get(f"http://127.0.0.1:{inbox_port}/messages", timeout=2).json()["messages"]
        for m in messages[seen:]:
            _say(f"  arrived: {m['kind']} to {m['to']}" + (f" ({m['subject']})" if m.get("subject") else ""))
        seen = len(messages)
        if any(m["kind"] == "sms" for m in messages) and any("Handle With Care" in (m.get("subject") or "") for m in messages):
            return
        time.sleep(0.5)
    _say("sample events sent; nothing has arrived in the inbox yet (see the logs)")
