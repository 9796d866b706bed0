"""xngin's settings: one model, read from the environment, a `.env` file and a JSON file.

Precedence, highest first: values passed in code, environment variables (``XNGIN_*``; nested
fields with ``__``), the ``.env`` file, the JSON settings file (``xngin.settings.json``, or the
path in ``XNGIN_SETTINGS_FILE``), then defaults.

Any string value written ``=secret:NAME`` is replaced at start-up by the environment variable
``NAME`` or, failing that, by the file ``$XNGIN_SECRETS_DIR/NAME``. A secret that cannot be found
stops start-up with :class:`~xngin.errors.ConfigError` naming it. Resolved secret values are
remembered so that :meth:`Settings.redact` can strip them from any text that might be shown.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from xngin.errors import ConfigError

SECRET_PREFIX = "=secret:"
DEFAULT_SETTINGS_FILE = "xngin.settings.json"


class DatasourceSettings(BaseModel):
    """A warehouse declared in the settings rather than through the admin API."""

    name: str = Field(description="Name participant types refer to.")
    url: str = Field(description="SQLAlchemy URL; may be written =secret:NAME.")
    organization: str = Field(
        default="default", description="Organization that may use this datasource."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Engine options (pool size, connect_args, schema)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="XNGIN_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path("xngin-data"), description="Where the embedded stores keep their files."
    )
    database_url: str = Field(
        default="",
        description="App database (SQLAlchemy URL). Empty: a SQLite file in data_dir.",
    )
    event_store_url: str = Field(
        default="",
        description="Event store: duckdb:///path or clickhouse://user:pass@host:9000/db. "
        "Empty: a DuckDB file in data_dir.",
    )
    cache_url: str = Field(
        default="memory://",
        description="Assignment cache: memory:// (in-process) or redis://host:6379/0.",
    )
    datasources: list[DatasourceSettings] = Field(
        default_factory=list, description="Warehouses declared here (with =secret: values)."
    )
    secrets_dir: Path | None = Field(
        default=None, description="Folder of secret files, one per secret name."
    )
    session_secret: str = Field(
        default="",
        description="Key that signs web UI session cookies. Empty: derived at random per process.",
    )
    google_credentials_file: Path | None = Field(
        default=None,
        description="Service-account JSON key used to read config sheets from Google Sheets.",
    )
    sheets_dir: Path | None = Field(
        default=None,
        description="Folder whose CSV config sheets API callers may name in sheet_url.",
    )
    scheduler_interval_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often scheduled experiment starts and ends are applied; 0 turns the "
        "scheduler off in this process (another replica may run it).",
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    field_values_ttl_seconds: int = Field(
        default=300, ge=0, description="How long /v1/filters|metrics|strata answers are cached."
    )

    _secret_values: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        json_path = Path(os.environ.get("XNGIN_SETTINGS_FILE", DEFAULT_SETTINGS_FILE))
        json_source = JsonConfigSettingsSource(settings_cls, json_file=json_path)
        return (init_settings, env_settings, dotenv_settings, json_source)

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Settings:
        secrets_dir = self.secrets_dir or _env_path("XNGIN_SECRETS_DIR")
        found: set[str] = set()

        def resolve(value: Any, where: str) -> Any:
            if isinstance(value, str) and value.startswith(SECRET_PREFIX):
                secret = read_secret(value[len(SECRET_PREFIX) :], secrets_dir, where=where)
                found.add(secret)
                return secret
            if isinstance(value, dict):
                return {k: resolve(v, f"{where}.{k}") for k, v in value.items()}
            if isinstance(value, list):
                return [resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return value

        for name in ("database_url", "event_store_url", "cache_url", "session_secret"):
            setattr(self, name, resolve(getattr(self, name), name))
        for i, ds in enumerate(self.datasources):
            ds.url = resolve(ds.url, f"datasources[{i}].url")
            ds.options = resolve(ds.options, f"datasources[{i}].options")
        self._secret_values = found
        return self

    # Derived locations -------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'xngin.sqlite').resolve()}"

    @property
    def resolved_event_store_url(self) -> str:
        return self.event_store_url or f"duckdb:///{(self.data_dir / 'events.duckdb').resolve()}"

    def redact(self, text: str) -> str:
        """Remove every resolved secret value from ``text`` (for logs and error messages)."""
        for secret in sorted(self._secret_values, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text


def read_secret(name: str, secrets_dir: Path | None, *, where: str) -> str:
    """Look a secret up in the environment, then in ``secrets_dir``; raise naming it if absent."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{where}: '{SECRET_PREFIX}{name}' is not a valid secret name")
    if name in os.environ:
        return os.environ[name]
    if secrets_dir is not None:
        path = secrets_dir / name
        if path.is_file():
            return path.read_text().strip()
    looked = f"environment variable {name}"
    if secrets_dir is not None:
        looked += f" or file {secrets_dir / name}"
    raise ConfigError(f"{where}: secret {name!r} is missing (looked for {looked})", field=where)


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
