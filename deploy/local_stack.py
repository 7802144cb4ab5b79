"""Run Apache Kafka (KRaft), Apicurio Registry and Keycloak on loopback from Maven Central artifacts.

No Docker needed: Maven resolves the broker jars and the registry's runnable archive into a cache
outside the repo (``~/.cache/handoff`` or ``$HANDOFF_CACHE_DIR``) and later runs reuse it. Versions
live in ``deploy/local/pom.xml`` only.

    python -m deploy.local_stack up [--port 9092] [--registry-port 8081] [--brokers 3]

Used by the test fixtures (``tests/conftest.py``), by ``handoff stack up`` and by the benchmarks;
Keycloak (``LocalKeycloak``, the demo realm of deploy/local/keycloak) by the sign-in tests.
Every JVM started here runs in its own process group and is killed if its parent dies, so a
crashed test run leaves no stray broker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from deploy.tls_certs import BrokerCertificates, make_broker_certificates

POM = Path(__file__).parent / "local" / "pom.xml"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class LocalStackError(RuntimeError):
    """The local broker or registry could not be fetched or started; the message says where to look."""


def pinned_versions() -> dict[str, str]:
    """Versions pinned in deploy/local/pom.xml (kafka.version, apicurio.version, ...)."""
    props = ET.parse(POM).getroot().find("m:properties", _POM_NS)
    return {child.tag.split("}")[1]: (child.text or "").strip() for child in props}


def cache_dir() -> Path:
    base = os.environ.get("HANDOFF_CACHE_DIR") or Path.home() / ".cache" / "handoff"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mvn(*args: str, log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalStackError("Maven (mvn) is not on PATH; install it (apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS")
    with log.open("w") as out:
        rc = subprocess.call([mvn, "-B", "-q", "-f", str(POM), *args], stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise LocalStackError(f"mvn {' '.join(args)} failed (exit {rc}); see {log}")


def kafka_libs() -> Path:
    """Directory of the broker's jars, resolved once through Maven and cached."""
    version = pinned_versions()["kafka.version"]
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if not marker.exists():
        tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="kafka-libs-"))
        _mvn("dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
             log=cache_dir() / "mvn-kafka.log")
        # The SLF4J 1.7 API that Kafka's tree names would shadow the 2.x that the log4j2 binding needs.
        for stale in tmp.glob("slf4j-api-1.*.jar"):
            stale.unlink()
        shutil.rmtree(libs, ignore_errors=True)
        libs.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(libs)
        marker.touch()
    return libs


def registry_app() -> Path:
    """Directory holding Apicurio Registry's quarkus-run.jar, resolved once through Maven and cached."""
    version = pinned_versions()["apicurio.version"]
    home = cache_dir() / f"apicurio-registry-{version}"
    if not (home / "quarkus-run.jar").exists():
        tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="apicurio-"))
        _mvn("-P", "registry", "dependency:copy-dependencies", "-DincludeTypes=tar.gz",
             f"-DoutputDirectory={tmp}", log=cache_dir() / "mvn-apicurio.log")
        archives = list(tmp.glob("apicurio-registry-app-*.tar.gz"))
        if not archives:
            raise LocalStackError(f"Maven resolved no Apicurio archive into {tmp}")
        unpacked = tmp / "app"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(unpacked, filter="data")
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
    return home


def keycloak_dist() -> Path:
    """Keycloak's unpacked distribution (bin/kc.sh), resolved once through Maven and cached."""
    import zipfile

    version = pinned_versions()["keycloak.version"]
    home = cache_dir() / f"keycloak-{version}"
    if not (home / "bin" / "kc.sh").exists():
        tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="keycloak-"))
        _mvn("-P", "keycloak", "dependency:copy-dependencies", "-DincludeTypes=zip", f"-DoutputDirectory={tmp}",
             log=cache_dir() / "mvn-keycloak.log")
        archives = list(tmp.glob("keycloak-quarkus-dist-*.zip"))
        if not archives:
            raise LocalStackError(f"Maven resolved no Keycloak archive into {tmp}")
        with zipfile.ZipFile(archives[0]) as archive:
            archive.extractall(tmp / "unpacked")
        [unpacked] = list((tmp / "unpacked").iterdir())
        for script in (unpacked / "bin").glob("*.sh"):
            script.chmod(0o755)  # zip entries lose their mode
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
    return home


REGISTRY_MIN_JAVA = 21  # Apicurio Registry 3.3 is built for Java 21; the broker runs on 17.


def _java_major(java: str) -> int:
    try:
        out = subprocess.run([java, "-XshowSettings:properties", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    for line in out.stderr.splitlines():
        if "java.specification.version" in line:
            return int(line.split("=")[1].strip().split(".")[0])
    return 0


def java_at_least(major: int) -> str:
    """A java executable of at least ``major``: $HANDOFF_REGISTRY_JAVA, $JAVA_HOME, PATH, then /usr/lib/jvm."""
    candidates = [os.environ.get("HANDOFF_REGISTRY_JAVA"),
                  os.environ.get("JAVA_HOME") and str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"),
                  shutil.which("java")]
    candidates += sorted((str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java")), reverse=True)
    for java in filter(None, candidates):
        if Path(java).exists() and _java_major(java) >= major:
            return java
    raise LocalStackError(
        f"Apicurio Registry needs Java {major}+ and none was found; install one (e.g. a Temurin or OpenJDK "
        f"{major} package) and point HANDOFF_REGISTRY_JAVA at its bin/java, or set SCHEMA_REGISTRY_URL")


def _die_with_parent() -> None:
    """preexec_fn: own process group, signals unblocked, and SIGTERM when the launching process dies (Linux)."""
    os.setpgrp()
    # The launcher blocks SIGINT/SIGTERM to sigwait for them; a child must not inherit that mask,
    # or it could never be stopped (nor receive its parent-death signal).
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_process(proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _log4j2_config(path: Path, log_file: Path) -> Path:
    path.write_text(
        "<Configuration status=\"warn\"><Appenders>"
        f"<File name=\"file\" fileName=\"{log_file}\"><PatternLayout pattern=\"[%d] %p %m (%c)%n\"/></File>"
        "</Appenders><Loggers><Root level=\"info\"><AppenderRef ref=\"file\"/></Root>"
        "<Logger name=\"kafka.request.logger\" level=\"warn\"/><Logger name=\"state.change.logger\" level=\"warn\"/>"
        "</Loggers></Configuration>\n"
    )
    return path


SCRAM_USERS = "scram-users"  # beside a node's data: the principals its storage was formatted with


def _read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen | None = None
    tls_port: int | None = None  # a second, TLS-only listener when the cluster has one

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalKafka:
    """A KRaft cluster of ``brokers`` combined broker+controller nodes on 127.0.0.1.

    ``work_dir`` keeps data between runs when given (``handoff stack up``); by default a temporary
    directory is used and removed on ``stop``.
    """

    brokers: int = 1
    port: int | None = None
    work_dir: Path | None = None
    heap: str = "768m"
    tls: bool = False  # also listen with TLS (a private CA made in work_dir/tls: see deploy.tls_certs)
    # name -> password: the broker listens with TLS and SASL/SCRAM-SHA-512 only and authorizes every request
    # (KRaft's StandardAuthorizer: nothing without an ACL). Brokers talk to each other on that listener too, as
    # "admin", the one super user; no plain listener is open to clients. Only the KRaft controller listener
    # (which serves no produce, fetch or ACL request) stays plain on loopback.
    scram_users: dict[str, str] | None = None
    nodes: list[KafkaNode] = field(default_factory=list)
    certificates: BrokerCertificates | None = None
    _owns_work_dir: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def log_dirs(self) -> list[Path]:
        """Where each broker keeps its log segments (what a test reads to see what is on disk)."""
        return [n.data_dir / "data" for n in self.nodes]

    @property
    def tls_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{n.tls_port}" for n in self.nodes)

    def start(self, timeout: float = 120.0) -> str:
        libs = kafka_libs()
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="handoff-kafka-"))
            self._owns_work_dir = True
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self.nodes:
            first_port = self.port or free_port()
            for i in range(self.brokers):
                port = first_port if i == 0 else free_port()
                tls_port = port if self.scram_users else free_port() if self.tls else None
                self.nodes.append(KafkaNode(i + 1, port, free_port(), self.work_dir / f"node-{i + 1}", tls_port=tls_port))
        if self.scram_users:
            self.tls = True
        if self.tls and self.certificates is None:
            self.certificates = make_broker_certificates(self.work_dir / "tls")
        cluster_id_file = self.work_dir / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(_kraft_cluster_id())
        cluster_id = cluster_id_file.read_text().strip()
        for node in self.nodes:
            self._write_config(node)
            if not (node.data_dir / "data" / "meta.properties").exists():
                self._format(libs, node, cluster_id)
            elif self.scram_users and not set(self.scram_users) <= set(_read_lines(node.data_dir / SCRAM_USERS)):
                raise LocalStackError(  # SCRAM credentials are written once, when the storage is formatted
                    f"the broker in {self.work_dir} was made without sign-in for {sorted(self.scram_users)}: "
                    f"remove that directory (its topics go with it) and start again")
        for node in self.nodes:
            self._launch(libs, node)
        self.wait_ready(timeout)
        return self.bootstrap_servers

    def _write_config(self, node: KafkaNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        quorum = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replication = min(3, len(self.nodes))
        min_isr = 2 if len(self.nodes) >= 3 else 1
        if self.scram_users:  # one listener, TLS and SCRAM, for clients and brokers alike
            client_listeners = f"SASL_SSL://127.0.0.1:{node.port}"
        else:
            client_listeners = f"PLAINTEXT://127.0.0.1:{node.port}" + (
                f",SSL://127.0.0.1:{node.tls_port}" if node.tls_port else "")
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            # One node: a dynamic quorum of itself (formatted --standalone). Clusters: static voters.
            **({"controller.quorum.bootstrap.servers": f"127.0.0.1:{node.controller_port}"}
               if len(self.nodes) == 1 else {"controller.quorum.voters": quorum}),
            "listeners": f"{client_listeners},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": client_listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_SSL" if self.scram_users else "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
            "log.dirs": node.data_dir / "data",
            # Topics are created explicitly with their partition counts (Faust rejects mismatches).
            "auto.create.topics.enable": "false",
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": 8,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.check.interval.ms": 60000,
        }
        if self.certificates is not None:  # Kafka reads PEM directly: no JKS
            props |= {"ssl.keystore.type": "PEM", "ssl.keystore.location": self.certificates.keystore_file,
                      "ssl.truststore.type": "PEM", "ssl.truststore.location": self.certificates.ca_file}
        if self.scram_users:
            admin = self.scram_users["admin"]
            props |= {
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" '
                    f'password="{admin}";',
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # ANONYMOUS: what the plain controller listener's peers are (the controllers and brokers of this
                # cluster, on loopback); clients never reach that listener with a data request.
                "super.users": "User:ANONYMOUS;User:admin",
                "allow.everyone.if.no.acl.found": "false",
            }
        node.config_file.touch(mode=0o600)  # the administrator's password is in it
        node.config_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        _log4j2_config(node.data_dir / "log4j2.xml", node.log_file)

    def _java(self, libs: Path, node: KafkaNode, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={node.data_dir}",
            "-cp", f"{libs}/*", *args,
        ]

    def _format(self, libs: Path, node: KafkaNode, cluster_id: str) -> None:
        cmd = self._java(libs, node, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                         "-c", str(node.config_file), "--ignore-formatted")
        if len(self.nodes) == 1:
            cmd.append("--standalone")
        for name, password in (self.scram_users or {}).items():  # SCRAM credentials live in the cluster metadata
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise LocalStackError(f"formatting KRaft storage for node {node.node_id} failed: {result.stdout}{result.stderr}")
        (node.data_dir / SCRAM_USERS).write_text("".join(f"{name}\n" for name in self.scram_users or {}))

    def _launch(self, libs: Path, node: KafkaNode) -> None:
        out = (node.data_dir / "stdout.log").open("ab")
        node.process = subprocess.Popen(
            self._java(libs, node, "kafka.Kafka", str(node.config_file)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = 120.0, nodes: list[KafkaNode] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while not _log_says_started(node.log_file) or not _port_open(node.port):
                if node.process is not None and node.process.poll() is not None:
                    raise LocalStackError(f"Kafka node {node.node_id} exited with {node.process.returncode}; see {node.log_file}")
                if time.monotonic() > deadline:
                    raise LocalStackError(f"Kafka node {node.node_id} not ready after {timeout}s; see {node.log_file}")
                time.sleep(0.2)

    # --- fault injection for reliability tests --------------------------------------------------
    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[index]
        if node.is_running():
            os.killpg(node.process.pid, sig)
            node.process.wait(timeout=30)

    def stop_node(self, index: int) -> None:
        """Stop one node cleanly (SIGTERM), as an operator or an orchestrator would."""
        self.kill_node(index, signal.SIGTERM)

    def start_node(self, index: int, timeout: float = 120.0) -> None:
        node = self.nodes[index]
        # A fresh "started" line is what tells readiness, so start a new log segment.
        with contextlib.suppress(FileNotFoundError):
            node.log_file.rename(node.log_file.with_suffix(f".{int(time.time())}.log"))
        self._launch(kafka_libs(), node)
        self.wait_ready(timeout, [node])

    def restart_node(self, index: int, timeout: float = 120.0) -> None:
        self.stop_node(index)
        self.start_node(index, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        # All nodes at once: stopped one by one, the last ones lose their controller quorum and
        # sit out their controlled shutdown. What is still running after the grace period is killed.
        running = [n.process for n in self.nodes if n.is_running()]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            _stop_process(proc, timeout=max(0.1, deadline - time.monotonic()))
        if self._owns_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LocalRegistry:
    """Apicurio Registry (in-memory storage) with its Confluent-compatible API on 127.0.0.1."""

    port: int | None = None
    work_dir: Path | None = None
    heap: str = "512m"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API."""
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    def start(self, timeout: float = 120.0) -> str:
        home = registry_app()
        self.port = self.port or free_port()
        self.work_dir = self.work_dir or Path(tempfile.mkdtemp(prefix="handoff-registry-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = (self.work_dir / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [java_at_least(REGISTRY_MIN_JAVA), f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
             # Quarkus also opens a management interface, by default on 0.0.0.0:9000 (fixed at build
             # time, so it cannot be switched off): keep it on loopback, on a free port.
             "-Dquarkus.management.host=127.0.0.1", f"-Dquarkus.management.port={free_port()}",
             "-Dquarkus.log.console.json=false", "-jar", str(home / "quarkus-run.jar")],
            cwd=self.work_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        _wait_for_http(self.process, f"{self.url}/subjects", "Apicurio Registry", self.work_dir / "registry.log", timeout)
        return self.url

    def stop(self) -> None:
        _stop_process(self.process)

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


KEYCLOAK_REALM_FILE = POM.parent / "keycloak" / "handoff-realm.json"


@dataclass
class LocalKeycloak:
    """Keycloak on 127.0.0.1 (in-memory database, the demo realm imported at each start): the identity
    provider the local stack and the sign-in tests use. One user per role, each with TOTP enrolled.

    Keycloak puts the authentication methods a sign-in used in the ID token's ``amr`` only where the
    realm's browser flow names them; a realm import cannot configure the built-in flow's steps, so
    ``start`` names them through the admin API: the password form ``pwd``, the OTP form ``otp``, each
    counted for the realm's session lifetime after the step (``maxAge``)."""

    port: int | None = None
    work_dir: Path | None = None
    heap: str = "512m"
    realm: str = "handoff"
    # Set at start: clients' secrets (else the realm file's demo ones), the public JWKS of each private_key_jwt
    # client (SMART Backend Services), and the scopes each such client may ask for.
    client_secrets: dict[str, str] = field(default_factory=dict)
    client_keys: dict[str, dict] = field(default_factory=dict)
    client_scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    admin_password: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"

    def start(self, timeout: float = 180.0) -> str:
        home = keycloak_dist()
        self.port = self.port or free_port()
        self.work_dir = self.work_dir or Path(tempfile.mkdtemp(prefix="handoff-keycloak-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        imports = home / "data" / "import"  # where --import-realm looks; the database itself is in memory
        imports.mkdir(parents=True, exist_ok=True)
        shutil.copy(KEYCLOAK_REALM_FILE, imports / KEYCLOAK_REALM_FILE.name)
        java = java_at_least(REGISTRY_MIN_JAVA)
        env = {**os.environ, "JAVA_HOME": str(Path(java).parents[1]), "JAVA_OPTS_KC_HEAP": f"-Xmx{self.heap}",
               "KC_BOOTSTRAP_ADMIN_USERNAME": "admin", "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password}
        log = (self.work_dir / "keycloak.log").open("ab")
        self.process = subprocess.Popen(
            [str(home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem", "--http-host=127.0.0.1",
             f"--http-port={self.port}", f"--http-management-port={free_port()}", "--import-realm"],
            cwd=self.work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        _wait_for_http(self.process, f"{self.issuer}/.well-known/openid-configuration", "Keycloak",
                       self.work_dir / "keycloak.log", timeout)
        self._configure()
        return self.issuer

    def _configure(self) -> None:
        import json

        def call(method: str, path: str, body: dict | None = None, token: str | None = None, form: dict | None = None):
            data = (urllib.parse.urlencode(form).encode() if form is not None else
                    json.dumps(body).encode() if body is not None else None)
            request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers={
                **({"Authorization": f"Bearer {token}"} if token else {}),
                "Content-Type": "application/x-www-form-urlencoded" if form is not None else "application/json"})
            with urllib.request.urlopen(request, timeout=10) as resp:
                text = resp.read()
                return json.loads(text) if text else None

        token = call("POST", "/realms/master/protocol/openid-connect/token", form={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": self.admin_password})["access_token"]
        admin = f"/admin/realms/{self.realm}"

        def client(client_id: str) -> dict:
            [found] = call("GET", f"{admin}/clients?clientId={client_id}", token=token)
            return found

        for client_id, secret in self.client_secrets.items():
            found = client(client_id)
            call("PUT", f"{admin}/clients/{found['id']}", {**found, "secret": secret}, token)
        for client_id, jwks in self.client_keys.items():
            found = client(client_id)
            attributes = {**found.get("attributes", {}), "use.jwks.string": "true", "jwks.string": json.dumps(jwks)}
            call("PUT", f"{admin}/clients/{found['id']}", {**found, "attributes": attributes}, token)
        # Scopes a client asks for by name (SMART's system/Task.rs): optional client scopes, made here so that
        # the realm keeps Keycloak's built-in ones (a realm file that lists scopes replaces them all).
        existing = {scope["name"]: scope["id"] for scope in call("GET", f"{admin}/client-scopes", token=token)}
        for client_id, scopes in self.client_scopes.items():
            found = client(client_id)
            for name in scopes:
                if name not in existing:
                    call("POST", f"{admin}/client-scopes", {
                        "name": name, "protocol": "openid-connect",
                        "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"}}, token)
                    existing = {scope["name"]: scope["id"] for scope in call("GET", f"{admin}/client-scopes", token=token)}
                call("PUT", f"{admin}/clients/{found['id']}/optional-client-scopes/{existing[name]}", token=token)
        flows = f"/admin/realms/{self.realm}/authentication"
        for execution in call("GET", f"{flows}/flows/browser/executions", token=token):
            reference = {"auth-username-password-form": "pwd", "auth-otp-form": "otp"}.get(execution.get("providerId"))
            if reference and not execution.get("authenticationConfig"):
                # maxAge: how long after the step its method still counts in a token (unset, 0: only a token
                # issued in the same second would name it)
                call("POST", f"{flows}/executions/{execution['id']}/config", {
                    "alias": f"amr-{reference}", "config": {"default.reference.value": reference,
                                                           "default.reference.maxAge": "43200"}}, token)

    def stop(self) -> None:
        _stop_process(self.process)

    def __enter__(self) -> LocalKeycloak:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_for_http(process: subprocess.Popen, url: str, name: str, log: Path, timeout: float) -> None:
    """Until ``url`` answers 200; ``LocalStackError`` (naming the log) if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise LocalStackError(f"{name} exited with {process.returncode}; see {log}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        if time.monotonic() > deadline:
            raise LocalStackError(f"{name} not ready after {timeout}s; see {log}")
        time.sleep(0.3)


def _kraft_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints)."""
    import base64

    while True:  # like Kafka's Uuid.randomUuid: never one that reads as a command-line flag
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _log_says_started(log_file: Path) -> bool:
    try:
        return "Kafka Server started" in log_file.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deploy.local_stack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="resolve the broker, the registry and Keycloak into the cache, then exit")
    fetch.set_defaults(fn=lambda a: (print(kafka_libs()), print(registry_app()), print(keycloak_dist())))
    up = sub.add_parser("up", help="run the broker (and registry) until Ctrl-C")
    up.add_argument("--port", type=int, default=9092)
    up.add_argument("--registry-port", type=int, default=8081)
    up.add_argument("--brokers", type=int, default=1)
    up.add_argument("--no-registry", action="store_true")
    up.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        args.fn(args)
        return 0
    kafka = LocalKafka(brokers=args.brokers, port=args.port, work_dir=args.work_dir)
    registry = None if args.no_registry else LocalRegistry(port=args.registry_port)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        print(f"kafka: {kafka.start()}", flush=True)
        if registry:
            print(f"registry: {registry.start()}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        if registry:
            registry.stop()
        kafka.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
