"""Bad-input corpora: ``hostile_intake.jsonl`` (HTTP bodies, built by ``build_hostile_intake``) and the
bad Kafka records made from it."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

HOSTILE_INTAKE = Path(__file__).with_name("hostile_intake.jsonl")
PAD = "@@PAD@@"


@dataclass(frozen=True)
class IntakeCase:
    name: str
    intake: str  # "referrals" | "child-encounters"
    content_type: str | None
    body: bytes
    expect: int

    @property
    def path(self) -> str:
        return f"/v1/{self.intake}"

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}",
                **({"Content-Type": self.content_type} if self.content_type else {})}


def intake_cases() -> list[IntakeCase]:
    cases = []
    for line in filter(None, HOSTILE_INTAKE.read_text().split("\n")):  # not splitlines(): U+2028 is in a body
        raw = json.loads(line)
        if "body_hex" in raw:
            body = bytes.fromhex(raw["body_hex"])
        else:
            text = raw["body"]
            if "pad" in raw:
                char, size = raw["pad"]
                text = text.replace(PAD, char * size)
            body = text.encode()
        cases.append(IntakeCase(raw["name"], raw["intake"], raw["content_type"], body, raw["expect"]))
    return cases


def bad_kafka_values(case: IntakeCase, n: int, valid_frame: bytes) -> bytes:
    """A bad record for the intake topic, made from a corpus case, in turns: the body as it is (not
    Avro), the body behind a real schema id (an Avro body that does not match), and a valid record
    cut short. ``valid_frame``: a valid record of the topic's event type."""
    kind = n % 3
    if kind == 0:
        return case.body or b"\x01"
    if kind == 1:
        return valid_frame[:5] + (case.body or b"\xff")
    return valid_frame[: 5 + (n % max(1, len(valid_frame) - 6))]


def wrong_schema_id(n: int) -> bytes:
    return b"\x00" + struct.pack(">I", 900_000 + n) + b"\x02\x04"
