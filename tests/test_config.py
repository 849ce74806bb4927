from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kefal_lite.config import ConfigError, load, redacted, server_secret


def test_defaults(tmp_path: Path) -> None:
    s = load(environ={}, config_file=None)
    assert (s.host, s.port, s.http_max_body_bytes) == ("127.0.0.1", 8470, 1_048_576)
    assert s.database_synchronous == "NORMAL"


def test_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "kefal.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\n[smtp]\nhost = "mail.lan"\nport = 2525\n')
    s = load(config_file=toml, environ={})
    assert (s.port, s.host, s.smtp_host, s.smtp_port) == (9000, "0.0.0.0", "mail.lan", 2525)
    s = load(config_file=toml, environ={"KEFAL_PORT": "9100", "KEFAL_SMTP_PORT": "25"})
    assert (s.port, s.smtp_port, s.host) == (9100, 25, "0.0.0.0")
    s = load({"port": 9200, "host": None}, config_file=toml, environ={"KEFAL_PORT": "9100"})
    assert (s.port, s.host) == (9200, "0.0.0.0")


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "k.toml"
    toml.write_text("[auth]\nsignup = true\n")
    assert load(environ={"KEFAL_CONFIG": str(toml)}).auth_signup is True


@pytest.mark.parametrize(
    "text, needle",
    [
        ("prot = 1\n", "prot"),
        ("port = 70000\n", "port"),
        (
            '[database]\nsynchronous = "OFF"\n',
            r"`synchronous` in \[database\]: must be one of NORMAL",
        ),
        ("port = [\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    toml = tmp_path / "kefal.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load(config_file=toml, environ={})


def test_secret_generated_once_with_mode_0600(tmp_path: Path) -> None:
    s = load({"data_dir": str(tmp_path / "d")}, environ={})
    first = server_secret(s)
    assert len(first) >= 48
    path = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert server_secret(s) == first
    assert server_secret(load({"secret": "from-config"}, environ={})) == "from-config"


def test_redacted_masks_secrets() -> None:
    s = load({"secret": "s3cret", "smtp_password": "pw"}, environ={})
    dumped = redacted(s)
    assert dumped["secret"] == "***" and dumped["smtp_password"] == "***"
    assert "s3cret" not in str(dumped) and "pw" not in str(dumped.values())


def test_example_config_documents_every_setting_with_its_default() -> None:
    import tomllib

    from kefal_lite.config import FIELDS, Settings, _flatten_toml

    example = Path(__file__).parent.parent / "kefal.example.toml"
    assert load(config_file=example, environ={}) == Settings()
    assert set(_flatten_toml(tomllib.loads(example.read_text()))) == set(FIELDS)


@pytest.mark.parametrize(
    "environ, toml, expected",
    [
        ({"KEFAL_PORT": "abc"}, None, "KEFAL_PORT=abc: expected a whole number, got text"),
        ({"KEFAL_PORT": "0"}, None, "KEFAL_PORT=0: must be at least 1"),
        ({}, "[smtp]\nport = 70000\n", "key `port` in [smtp]: must be at most 65535"),
        ({}, "prot = 1\n", "unknown setting `prot`"),
    ],
)
def test_config_errors_name_the_variable_or_the_file_and_key(
    tmp_path: Path, environ: dict[str, str], toml: str | None, expected: str
) -> None:
    path = None
    if toml is not None:
        path = tmp_path / "kefal.toml"
        path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load(config_file=path, environ=environ)
    message = str(caught.value)
    assert expected in message and "$." not in message and "`int`" not in message
    if path is not None:
        assert str(path) in message


def test_unreadable_config_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "kefal.toml"
    folder.mkdir()  # reading a directory fails for root too, unlike a chmod 000 file
    with pytest.raises(ConfigError, match=f"cannot read config file {folder}"):
        load(config_file=folder, environ={})


def test_detection_settings_from_the_environment() -> None:
    s = load(
        environ={
            "KEFAL_DETECTION_LEARNING_MINUTES": "0",
            "KEFAL_DETECTION_GUARDED_PROCESSES": "acme-edr, otherd",
        }
    )
    assert s.detection_learning_minutes == 0 and s.detection_learning_snapshots == 3
    assert s.detection_guarded_processes == ["acme-edr", "otherd"]
