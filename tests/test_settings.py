import json
from pathlib import Path

import pytest

from xngin.errors import ConfigError
from xngin.settings import Settings


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "xngin.settings.json"
    monkeypatch.setenv("XNGIN_SETTINGS_FILE", str(path))
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's folder
    for var in ("XNGIN_DATABASE_URL", "XNGIN_CACHE_URL", "XNGIN_SECRETS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return path


def test_json_file_is_read(settings_file: Path) -> None:
    settings_file.write_text(json.dumps({"cache_url": "redis://file:6379/0"}))
    assert Settings().cache_url == "redis://file:6379/0"


def test_environment_overrides_file(settings_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file.write_text(json.dumps({"cache_url": "redis://file:6379/0"}))
    monkeypatch.setenv("XNGIN_CACHE_URL", "redis://env:6379/0")
    assert Settings().cache_url == "redis://env:6379/0"


def test_dotenv_sits_between_environment_and_file(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings_file.write_text(json.dumps({"cache_url": "redis://file:6379/0", "log_level": "debug"}))
    (tmp_path / ".env").write_text("XNGIN_CACHE_URL=redis://dotenv:6379/0\n")
    assert Settings().cache_url == "redis://dotenv:6379/0"
    assert Settings().log_level == "debug"
    monkeypatch.setenv("XNGIN_CACHE_URL", "redis://env:6379/0")
    assert Settings().cache_url == "redis://env:6379/0"


def test_secret_from_environment(settings_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file.write_text(json.dumps({"datasources": [{"name": "wh", "url": "=secret:WH_URL"}]}))
    monkeypatch.setenv("WH_URL", "postgresql+psycopg://u:hunter2@db/x")
    settings = Settings()
    assert settings.datasources[0].url == "postgresql+psycopg://u:hunter2@db/x"
    assert settings.redact("failed: postgresql+psycopg://u:hunter2@db/x") == "failed: ***"


def test_secret_from_secrets_dir(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "APP_DB").write_text("sqlite:///from-file.sqlite\n")
    monkeypatch.setenv("XNGIN_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("XNGIN_DATABASE_URL", "=secret:APP_DB")
    assert Settings().database_url == "sqlite:///from-file.sqlite"


def test_missing_secret_stops_start_up_naming_it(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    settings_file.write_text(
        json.dumps({"datasources": [{"name": "wh", "url": "=secret:NO_SUCH_SECRET"}]})
    )
    with pytest.raises(ConfigError) as info:
        Settings()
    assert "NO_SUCH_SECRET" in info.value.message
    assert info.value.field == "datasources[0].url"


def test_secret_inside_datasource_options(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WH_PASSWORD", "s3cr3t")
    settings_file.write_text(
        json.dumps(
            {
                "datasources": [
                    {
                        "name": "wh",
                        "url": "clickhouse+native://ch/db",
                        "options": {"connect_args": {"password": "=secret:WH_PASSWORD"}},
                    }
                ]
            }
        )
    )
    assert Settings().datasources[0].options["connect_args"]["password"] == "s3cr3t"
