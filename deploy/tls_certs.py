"""A private CA and a broker certificate for TLS between Handoff and Kafka, made with openssl.

For local runs and tests (the launcher's TLS listener) and for the docker-compose TLS example:

    python -m deploy.tls_certs deploy/tls --host kafka --host localhost

writes ``ca.pem`` (what clients trust: HANDOFF_KAFKA_SSL_CAFILE) and ``broker.pem`` (the broker's
key and certificate chain, a Kafka PEM keystore). Keys stay in that folder; it is git-ignored.
In production, use your organisation's CA instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrokerCertificates:
    ca_file: Path          # the CA certificate, for clients
    keystore_file: Path    # broker key (PKCS#8) + certificate + CA, a Kafka PEM keystore


def make_broker_certificates(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                             days: int = 30) -> BrokerCertificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.crt"
    ext = directory / "broker.ext"
    names = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    ext.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem),
        "-days", str(days), "-subj", "/CN=Handoff local CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0]}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", str(days), "-extfile", str(ext))
    pkcs8 = subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(key)], check=True,
                           capture_output=True).stdout
    keystore = directory / "broker.pem"
    keystore.write_bytes(pkcs8 + cert.read_bytes() + ca_pem.read_bytes())
    for path in (ca_key, key, keystore):
        path.chmod(0o600)
    return BrokerCertificates(ca_pem, keystore)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", action="append", help="a name or IP the broker is reached at (repeatable)")
    args = parser.parse_args(argv)
    made = make_broker_certificates(args.directory, tuple(args.host or ("127.0.0.1", "localhost")))
    print(f"CA: {made.ca_file}\nbroker keystore: {made.keystore_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
