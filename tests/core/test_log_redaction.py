"""voltx._logging: secrets never reach a rendered log line, a record or a lineage."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from voltx import _logging
from voltx._logging import (
    REDACTED,
    add_secret,
    configure_logging,
    is_secret_key,
    redact,
    redact_text,
    register_environment_secrets,
)


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh secret registry and structlog set-up, restored afterwards for the other tests."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    monkeypatch.setattr(_logging, "_secrets", set())
    monkeypatch.setattr(_logging, "_configured", False)
    yield
    structlog.reset_defaults()
    if was_configured:
        structlog.configure(**saved)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "apikey",
        "openai-api-key",
        "AWS_SECRET_ACCESS_KEY",
        "aws_access_key",
        "token",
        "hf_token",
        "GITHUB_TOKEN",
        "password",
        "db.password",
        "passwd",
        "client_secret",
        "private_key",
        "credentials",
    ],
)
def test_secret_named_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["max_tokens", "tokenizer", "num_tokens", "tokens_per_batch", "keyword", "author", "steps"],
)
def test_ordinary_keys_are_not_secret(key):
    assert not is_secret_key(key)


def test_redact_hides_values_under_secret_keys_recursively():
    data = {
        "api_key": "sk-live-123456",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "steps": 10,
        "max_tokens": 512,
        "backends": {"vast": {"token": "vast-abcdef", "region": "eu"}},
        "hosts": [{"password": "hunter2hunter2", "host": "a"}, "plain"],
        "pair": ("x", {"token": "tok-123456"}),
    }

    assert redact(data) == {
        "api_key": REDACTED,
        "AWS_SECRET_ACCESS_KEY": REDACTED,
        "steps": 10,
        "max_tokens": 512,
        "backends": {"vast": {"token": REDACTED, "region": "eu"}},
        "hosts": [{"password": REDACTED, "host": "a"}, "plain"],
        "pair": ["x", {"token": REDACTED}],
    }
    assert data["api_key"] == "sk-live-123456"  # a copy: the input is untouched


def test_a_secret_key_holding_a_table_hides_all_of_it():
    assert redact({"credentials": {"user": "me", "key": "k" * 10}}) == {"credentials": REDACTED}


def test_empty_secret_values_stay_as_they_are():
    assert redact({"token": "", "password": None}) == {"token": "", "password": None}


def test_registered_secrets_are_hidden_inside_any_string():
    add_secret("s3cr3t-value-xyz")

    assert redact_text("url=https://u:s3cr3t-value-xyz@host/x") == "url=https://u:***@host/x"
    assert redact(
        {"cmd": ["--key", "s3cr3t-value-xyz"], "nested": {"msg": "s3cr3t-value-xyz!"}}
    ) == {
        "cmd": ["--key", REDACTED],
        "nested": {"msg": "***!"},
    }


def test_a_secret_containing_another_is_hidden_whole():
    short, long = "abcdef123", "abcdef123456789"
    for secret in (short, long, "zz" + long + "zz"):
        add_secret(secret)
    assert redact_text(f"a={long} b={short} c=zz{long}zz") == "a=*** b=*** c=***"


def test_short_values_are_not_registered():
    add_secret("abc")
    assert redact_text("abc abcdef") == "abc abcdef"


def test_environment_secrets(monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", "vast-key-000111")
    monkeypatch.setenv("MY_SERVICE_LOGIN", "login-value-222")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM_X", "keep-this-visible")

    register_environment_secrets(["MY_SERVICE_LOGIN"])

    text = "vast-key-000111 login-value-222 keep-this-visible"
    assert redact_text(text) == "*** *** keep-this-visible"


class Credentials:
    """An object whose repr carries a secret, as a client object's often does."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Credentials(token={self.token!r})"


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_logs_never_show_a_secret(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_planted_env_secret")
    planted = "planted-secret-0123456789"
    add_secret(planted)
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, force=True)
    log = structlog.get_logger("voltx.test")

    log.info(
        f"connecting with {planted}",
        url=f"https://user:{planted}@example.invalid/path",
        api_key="key-under-a-secret-name",
        headers={"Authorization": "bearer-value", "x_auth": "auth-value-123"},
        hf="hf_planted_env_secret",
        client=Credentials(planted),
        max_tokens=512,
    )

    output = stream.getvalue()
    for secret in (planted, "key-under-a-secret-name", "hf_planted_env_secret", "auth-value-123"):
        assert secret not in output
    (line,) = log_lines(stream)
    assert line["event"] == "connecting with ***"
    assert line["url"] == "https://user:***@example.invalid/path"
    assert line["api_key"] == REDACTED
    assert line["headers"]["x_auth"] == REDACTED
    assert line["hf"] == REDACTED
    assert line["max_tokens"] == 512
    assert line["level"] == "info"


def test_an_exception_traceback_is_redacted():
    planted = "planted-in-an-exception"
    add_secret(planted)
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, force=True)
    log = structlog.get_logger("voltx.test")

    try:
        raise RuntimeError(f"login failed for {planted}")
    except RuntimeError:
        log.exception("upload failed")

    assert planted not in stream.getvalue()
    (line,) = log_lines(stream)
    assert "login failed for ***" in line["exception"]


def test_console_logs_never_show_a_secret():
    planted = "planted-console-secret"
    add_secret(planted)
    stream = io.StringIO()
    configure_logging(json=False, stream=stream, force=True)

    structlog.get_logger("voltx.test").warning("retry", password="pw-value-1", note=planted)

    output = stream.getvalue()
    assert "retry" in output
    assert "pw-value-1" not in output
    assert planted not in output


def test_levels_below_the_threshold_are_dropped():
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, force=True, level=logging.WARNING)
    log = structlog.get_logger("voltx.test")
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in log_lines(stream)] == ["loud"]


def test_configure_logging_runs_once_unless_forced():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=second)  # ignored: already configured
    structlog.get_logger("voltx.test").info("one")
    configure_logging(json=True, stream=second, force=True)
    structlog.get_logger("voltx.test").info("two")
    assert [line["event"] for line in log_lines(first)] == ["one"]
    assert [line["event"] for line in log_lines(second)] == ["two"]


def test_default_stream_follows_sys_stderr(monkeypatch):
    """Configured while one stderr is in place, logging keeps working after it is swapped out."""
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure_logging(json=True)
    structlog.get_logger("voltx.test").info("one")
    assert [line["event"] for line in log_lines(first)] == ["one"]
    first.close()  # a test runner's capture ends, or an embedding app restores its stream

    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    structlog.get_logger("voltx.test").info("two")

    assert [line["event"] for line in log_lines(second)] == ["two"]
