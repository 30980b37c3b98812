"""The at-rest master key: generated once under ESIMOTA_HOME with mode 0600, or given by ESIMOTA_MASTER_KEY."""

import stat

import pytest

from esimota import config
from esimota.errors import ConfigError


def test_master_key_generated_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("ESIMOTA_MASTER_KEY", raising=False)
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
