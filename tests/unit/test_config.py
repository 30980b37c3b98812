"""The at-rest master key: generated once under ESIMOTA_HOME with mode 0600 (embedded database only), or given
by ESIMOTA_MASTER_KEY; under DATABASE_URL a missing key is refused (issue 18)."""

import stat

import pytest

from esimota import config
from esimota.errors import ConfigError


def test_master_key_generated_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("ESIMOTA_MASTER_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the project-local database: keys are made here
    first = config.master_key(tmp_path)
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert config.master_key(tmp_path) == first


def test_master_key_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ESIMOTA_MASTER_KEY", "11" * 32)
    assert config.master_key(tmp_path) == b"\x11" * 32
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize("bad", ["zz" * 32, "11" * 16, "1"])
def test_bad_master_key_in_environment_is_refused(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("ESIMOTA_MASTER_KEY", bad)
    with pytest.raises(ConfigError, match="64 hex digits"):
        config.master_key(tmp_path)


def test_bad_port_in_environment_is_refused(monkeypatch):
    monkeypatch.setenv("ESIMOTA_HTTP_PORT", "eighty")
    with pytest.raises(ConfigError, match="ESIMOTA_HTTP_PORT"):
        config.Settings()


def test_backup_interval_in_hours(monkeypatch):
    """ESIMOTA_BACKUP_INTERVAL: unset or empty is off (0); hours otherwise; nonsense is a ConfigError."""
    monkeypatch.delenv("ESIMOTA_BACKUP_INTERVAL", raising=False)
    assert config.Settings().backup_interval_h == 0
    monkeypatch.setenv("ESIMOTA_BACKUP_INTERVAL", "6")
    assert config.Settings().backup_interval_h == 6
    for bad in ("daily", "-1"):
        monkeypatch.setenv("ESIMOTA_BACKUP_INTERVAL", bad)
        with pytest.raises(ConfigError, match="ESIMOTA_BACKUP_INTERVAL"):
            config.Settings()


@pytest.mark.parametrize("env_name, file", [("ESIMOTA_MASTER_KEY", "master.key"), ("ESIMOTA_BACKUP_KEY", "backup.key"),
                                            ("ESIMOTA_EXPORT_SIGNING_KEY", "export-signing.key")])
def test_no_key_is_generated_under_database_url(tmp_path, monkeypatch, env_name, file):
    """Several nodes share DATABASE_URL: a key one node made up would not be the others'."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.invalid/esimota")
    monkeypatch.delenv(env_name, raising=False)
    with pytest.raises(ConfigError, match=env_name) as err:
        config.key_from_env_or_file(env_name, tmp_path / file)
    assert err.value.reason == "KEY_MISSING" and not (tmp_path / file).exists()
    (tmp_path / file).write_text("22" * 32 + "\n")  # a key the operator put there is used
    assert config.key_from_env_or_file(env_name, tmp_path / file) == b"\x22" * 32


def test_node_id_defaults_to_the_host_name(monkeypatch):
    import socket

    monkeypatch.delenv("ESIMOTA_NODE_ID", raising=False)
    assert config.node_id() == socket.gethostname()
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    assert config.node_id() == "node-b" and config.Settings().node_id == "node-b"
