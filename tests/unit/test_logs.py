"""Logs carry correlation ids and never personal data."""

from __future__ import annotations

import io
import json
import logging

from services.platform.logs import REDACTED, configure_logging, correlation_scope, get_logger, redact_personal_data


def test_personal_keys_are_redacted_at_any_depth() -> None:
    out = redact_personal_data(None, "info", {"event": "x", "referral_id": "r-1",
                                              "payload": {"person": {"first_name": "Zebulon"}, "site_id": "abq"},
                                              "items": [{"phone": "+15055550143"}]})
    assert out["referral_id"] == "r-1"
    assert out["payload"]["person"] == REDACTED
    assert out["payload"]["site_id"] == "abq"
    assert out["items"][0]["phone"] == REDACTED


def test_pydantic_input_echo_is_stripped() -> None:
    msg = "1 validation error\nperson.first_name\n  String too long [type=string_too_long, input_value='Zebulon', input_type=str]"
    out = redact_personal_data(None, "info", {"event": msg})
    assert "Zebulon" not in out["event"]
    assert "person.first_name" in out["event"]


def test_json_lines_carry_correlation_id_and_service_and_no_personal_values() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", service="unit", stream=stream)
    try:
        with correlation_scope("corr-123"):
            get_logger("t").info("page_sent", page_id="p-1", officer_callback_phone="+15055550143")
            logging.getLogger("stdlib").warning("from the standard library")
    finally:
        configure_logging("WARNING", "json", stream=io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["correlation_id"] == "corr-123"
    assert lines[0]["service"] == "unit"
    assert lines[0]["officer_callback_phone"] == REDACTED
    assert "+15055550143" not in stream.getvalue()
    assert lines[1]["event"] == "from the standard library" and lines[1]["correlation_id"] == "corr-123"
