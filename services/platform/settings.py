"""Typed settings: environment variables (``HANDOFF_*``) over a TOML file over defaults.

The file is ``$HANDOFF_CONFIG`` (default ``handoff.toml`` in the working directory, if present).
Secrets (SASL password, link-signing key) come from the environment or from ``*_FILE`` paths
outside the repo, never from code.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from services.kernel.clock import EventTimeWindow

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore", frozen=True)

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("HANDOFF_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"))
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_dir: Path | None = Field(
        None, description="handoff run all: a password file per broker principal (DIR/notifier, DIR/api, ...), so that "
                          "each service in the one process signs in as itself, with its own ACLs")
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_session_timeout_seconds: float = Field(10.0, ge=6, le=300, description="a crashed worker's partitions move after this")
    kafka_producer_linger_ms: float = Field(
        0.0, ge=0, le=100, description="how long a producer holds a batch open for more records. None by default: under "
                                       "load records batch anyway behind the one request in flight per partition, and "
                                       "5 ms saved no CPU but added 40 ms to a referral's steady p50 (bench/findings.md)")
    kafka_commit_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="how often a worker commits the offsets it has handled. What a crash replays "
                                      "(deduplicated, never sent twice) grows with it; 5 s saved no CPU "
                                      "(bench/findings.md)")
    kafka_follower_fetch_wait_ms: int = Field(
        0, ge=0, le=1000, description="how long the broker may hold a read model's fetch for more records (with a "
                                      "high minimum); 0, the default, for at once. 250 took 0.8 ms of the API's CPU "
                                      "and 0.5 ms of the broker's off each item under load (bench/findings.md), but a "
                                      "console then lags the page or email that sends someone to it by as much. The "
                                      "keys' follower, which records wait for, is always answered at once")
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._\-]*$", description="prepended to every topic name")
    topic_partitions: int = Field(4, ge=1)
    audit_retention_days: int = Field(400, ge=365, description="CJIS: audit records kept at least one year")
    child_data_retention_days: int = Field(30, ge=1, le=90, description="CAD child encounters, HWC notices, triage")
    qrt_data_retention_days: int = Field(
        60, ge=1, le=85, description="a Quick Response follow-up (who, where) is deleted this long after its window "
                                     "closed (the follow-up topic keeps 90 days)")
    walk_in_data_retention_days: int = Field(
        60, ge=1, le=85, description="a self-referral (a first name, its volunteers and expenses) is deleted this long "
                                     "after the walk-in (the walk-in topic keeps 90 days): export expenses monthly")
    participant_data_retention_days: int = Field(
        365, ge=1, le=10 * 365, description="a closed referral's personal values (who, where, what was said) are erased "
                                            "this long after it closed; its statuses and times stay in the figures")
    walk_in_link_hours: int = Field(
        48, ge=1, le=14 * 24, description="how long a volunteer's link works: accept, then milestones and expenses")
    records_in_flight: int = Field(
        256, ge=1, description="records an agent handles ahead of the writes of those before it (acknowledged in order)")
    topic_replication_factor: int = Field(1, ge=1)
    topic_min_insync_replicas: int | None = Field(
        None, ge=1, description="acks=all waits for this many replicas; default 2 from replication factor 3 up")

    @property
    def min_insync_replicas(self) -> int:
        return self.topic_min_insync_replicas or min(2, max(1, self.topic_replication_factor - 1))

    # --- Schema registry: a Confluent-API URL, or memory:// for an in-process one --------------
    schema_registry_url: str = Field(
        "http://127.0.0.1:8081/apis/ccompat/v7",
        validation_alias=AliasChoices("HANDOFF_SCHEMA_REGISTRY_URL", "SCHEMA_REGISTRY_URL", "schema_registry_url"))

    # --- Processing ----------------------------------------------------------------------------
    data_dir: Path = Path("var")
    kek_directory: Path | None = Field(
        None, description="the local key provider's key-encryption keys (default: data_dir/keys); outside the repo")
    seal_personal_values: bool = Field(
        True, description="seal personal values under their subjects' keys; off only for the benchmark's comparison "
                          "(a worker that seals nothing refuses nothing plain, and reads no sealed value)")
    processing_retries: int = Field(3, ge=0, description="retries of an unexpected handler failure before dead-lettering")
    max_record_bytes: int = Field(512 * 1024, ge=1024, le=1_000_000, description="larger records are dead-lettered")
    processing_retry_base_seconds: float = Field(0.2, gt=0)

    # --- Logging -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # --- HTTP ----------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_body_bytes: int = Field(64 * 1024, ge=1024, le=1_000_000,
                                     description="larger request bodies get 413; a referral is about 1 KiB")
    intake_max_age_days: float = Field(30, gt=0, description="CAD event times older than this are refused")
    intake_max_ahead_minutes: float = Field(10, ge=0, description="... and times further ahead (clock skew)")
    @property
    def event_time_window(self) -> EventTimeWindow:
        return EventTimeWindow(timedelta(days=self.intake_max_age_days), timedelta(minutes=self.intake_max_ahead_minutes))

    intake_publish_timeout_seconds: float = Field(5.0, gt=0, le=30, description="then 503 + Retry-After")
    public_base_url: str = "http://127.0.0.1:8080"  # where acknowledgement links point

    # --- Reference data (agencies, sites, case managers, schools) ---------------------------
    reference_dir: Path = REPO_ROOT / "config" / "local"
    # files: read reference_dir at start (tools, tests); kafka: follow the compacted reference topic live.
    reference_source: Literal["files", "kafka"] = "files"

    # --- Channels ------------------------------------------------------------------------------
    # SMS: a Twilio-shaped REST API (POST {base}/2010-04-01/Accounts/{sid}/Messages.json).
    sms_api_base_url: str = "http://127.0.0.1:8025"
    sms_account_sid: str = "AC-local"
    sms_auth_token: SecretStr = SecretStr("")
    sms_from_number: str = "+15055550000"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8026
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "handoff@localhost"
    smtp_connections: int = Field(8, ge=1, description="SMTP connections kept open per worker")
    smtp_require_tls: bool = False  # STARTTLS is used whenever the server offers it; this refuses servers that don't
    webhook_signing_secret: SecretStr = SecretStr("")
    # Web Push: Handoff's VAPID key (RFC 8292), the raw P-256 private key in base64url (the local stack makes one
    # with its other secrets: ``channels.new_vapid_key``); unset, push is off. The subject is who push services may contact about Handoff's sends.
    push_vapid_private_key: SecretStr | None = None
    push_vapid_subject: str = Field("mailto:handoff@localhost", pattern=r"^(mailto:|https://)")
    push_loopback_endpoints: bool = Field(
        False, description="development only: a device's push endpoint may be http://127.0.0.1 (the dev inbox)")
    fhir_subscription_loopback_endpoints: bool = Field(
        False, description="development only: a client's FHIR Subscription may post to http://127.0.0.1 (else https)")
    delivery_attempts: int = Field(3, ge=1, le=10)
    delivery_backoff_seconds: float = Field(0.5, gt=0)
    delivery_timeout_seconds: float = Field(10.0, gt=0)
    delivery_concurrency: int = Field(64, ge=1)  # sends in flight at once per worker

    # --- Secrets -------------------------------------------------------------------------------
    link_signing_key: SecretStr | None = None
    # Keys the ids of the de-identified overdose reports, so a CAD event id cannot be matched to one.
    overdose_report_key: SecretStr | None = None
    # Keys the district rosters' entries (a student's name and date of birth, hashed); unset: the link key.
    roster_key: SecretStr | None = None
    metrics_token: SecretStr | None = None  # Prometheus scrapes /metrics with this bearer token
    ack_link_ttl_minutes: int = Field(24 * 60, ge=1)
    # CJIS: a session locks after at most 30 minutes idle; and none outlives a shift.
    console_idle_minutes: int = Field(15, ge=1, le=30, description="a console session ends after this long unused")
    console_session_hours: float = Field(12, gt=0, le=24, description="and after this long whatever its use")
    # A development setting: access codes open the console beside the identity providers' sign-in
    # (identity_providers.toml). Off by default, and in the local stack: people sign in at their provider.
    console_access_codes: bool = False
    calendar_months_ahead: int = Field(3, ge=1, le=12, description="how far the on-call calendar feeds reach")
    escalation_tick_seconds: float = Field(1.0, gt=0)
    intake_warning_hours: float = Field(48, gt=0, description="warn this long before an intake deadline")

    # --- Handle With Care ------------------------------------------------------------------------
    hwc_backup_lead_minutes: float = Field(90, ge=0, description="unacknowledged this long before the deadline: backup contact")
    hwc_coordinator_lead_minutes: float = Field(45, ge=0, description="...: district coordinator")
    hwc_late_step_minutes: float = Field(30, gt=0, description="a late notice: at least this long between stages")
    hwc_disclose_agency: bool = False  # programs may choose to name the sending agency; the default hides it

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: dict) -> dict:
        # HANDOFF_X_FILE=/run/secrets/x reads secret X from a file (Docker/Kubernetes secrets).
        for name in ("kafka_sasl_password", "link_signing_key", "sms_auth_token", "smtp_password", "webhook_signing_secret",
                     "metrics_token", "push_vapid_private_key"):
            path = os.environ.get(f"HANDOFF_{name.upper()}_FILE")
            if path and not data.get(name):
                data[name] = Path(path).read_text().strip()
        return data

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("HANDOFF_CONFIG", "handoff.toml"))
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
