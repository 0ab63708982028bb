"""Kap's configuration: environment variables, validated once at start."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

SECRET_FIELDS = {
    "kap_jwt_secret",
    "internal_api_bearer",
    "mailgun_api_key",
    "mailgun_webhook_signing_key",
    "supabase_anon_key",
    "supabase_service_role_key",
    "kap_s3_secret_access_key",
    "kap_llm_api_key",
    "kap_embeddings_api_key",
}
URL_FIELDS_WITH_PASSWORDS = {
    "kap_database_url",
    "kap_app_database_url",
    "kap_redis_url",
    "kap_smtp_url",
}


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A setting is missing, malformed or contradicts another one."""


class Settings(BaseSettings):
    """Every setting Kap reads; names are the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    kap_env: Literal["development", "test", "production"] = "development"
    dev_auth: bool = False
    kap_qa_tools: bool = False

    kap_data_dir: Path = Path("./kap-data")
    kap_database_url: str | None = None
    kap_app_database_url: str | None = None
    kap_app_db_role: str = "kap_app"
    kap_auto_migrate: bool | None = None

    kap_host: str = "127.0.0.1"
    kap_dev_allow_remote: bool = False
    kap_port: int = Field(default=5000, ge=1, le=65535)
    kap_public_url: str | None = None
    fastapi_url: str | None = None

    kap_jwt_secret: str | None = None
    kap_jwt_audience: str = "authenticated"
    kap_jwks_url: str | None = None
    internal_api_bearer: str | None = None
    kap_session_days: int = Field(default=14, ge=1, le=365)
    kap_invite_days: int = Field(default=7, ge=1, le=90)

    supabase_url: str | None = None
    supabase_anon_key: str | None = None
    supabase_service_role_key: str | None = None

    rate_limit_window_sec: int = Field(default=60, ge=1)
    rate_limit_max: int = Field(default=300, ge=1)
    kap_redis_url: str | None = None
    kap_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    kap_max_json_kb: int = Field(default=1024, ge=1)
    kap_max_upload_mb: int = Field(default=100, ge=1)
    kap_recovery_grace_sec: int = Field(default=900, ge=1)

    kap_mail_from: str = "Kap <kap@localhost>"
    kap_smtp_url: str | None = None
    mailgun_domain: str | None = None
    mailgun_api_key: str | None = None
    mailgun_base_url: str = "https://api.mailgun.net"
    mailgun_webhook_signing_key: str | None = None
    digest_test_email: str | None = None

    kap_s3_endpoint_url: str | None = None
    kap_s3_region: str = "us-east-1"
    kap_s3_access_key_id: str | None = None
    kap_s3_secret_access_key: str | None = None
    kap_s3_bucket_artifacts: str = "artifacts"
    kap_s3_bucket_backups: str = "backups"
    kap_backup_retention_days: int = Field(default=14, ge=1, le=3650)

    kap_llm_base_url: str | None = None
    kap_llm_model: str | None = None
    kap_llm_api_key: str | None = None
    kap_llm_timeout_sec: float = Field(default=20.0, gt=0, le=600)
    kap_embeddings: Literal["auto", "off", "local", "api"] = "auto"
    kap_embeddings_url: str | None = None
    kap_embeddings_model: str | None = None
    kap_embeddings_api_key: str | None = None
    kap_embeddings_timeout_sec: float = Field(default=10.0, gt=0, le=600)

    kap_log_level: str = "INFO"

    @field_validator("kap_trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kap_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("kap_database_url", "kap_app_database_url")
    @classmethod
    def _check_db_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("supabase_url", "kap_jwks_url", "kap_public_url", "kap_s3_endpoint_url",
                     "kap_llm_base_url", "fastapi_url", "kap_embeddings_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.dev_auth and self.kap_env == "production":
            raise ValueError("DEV_AUTH=1 is refused when KAP_ENV=production")
        if bool(self.mailgun_domain) != bool(self.mailgun_api_key):
            missing = "MAILGUN_API_KEY" if self.mailgun_domain else "MAILGUN_DOMAIN"
            raise ValueError(f"{missing} is required when the other Mailgun setting is set")
        if self.kap_s3_endpoint_url and not (self.kap_s3_access_key_id and self.kap_s3_secret_access_key):
            raise ValueError("KAP_S3_ACCESS_KEY_ID and KAP_S3_SECRET_ACCESS_KEY are required with "
                             "KAP_S3_ENDPOINT_URL")
        if self.kap_embeddings_url and not self.kap_embeddings_model:
            raise ValueError("KAP_EMBEDDINGS_MODEL is required with KAP_EMBEDDINGS_URL")
        if self.kap_embeddings == "api" and not self.kap_embeddings_url:
            raise ValueError("KAP_EMBEDDINGS_URL is required when KAP_EMBEDDINGS=api")
        if self.kap_app_database_url and not self.kap_database_url:
            raise ValueError("KAP_DATABASE_URL is required when KAP_APP_DATABASE_URL is set")
        return self

    @property
    def database_url(self) -> str:
        """The owner/service connection URL; SQLite under the data folder by default."""
        if self.kap_database_url:
            return self.kap_database_url
        return f"sqlite:///{self.kap_data_dir.resolve() / 'kap.db'}"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def public_url(self) -> str:
        """The base of links in mail: KAP_PUBLIC_URL, else the address served (a wildcard as localhost)."""
        if self.kap_public_url:
            return self.kap_public_url
        host = "localhost" if self.kap_host in WILDCARD_HOSTS else self.kap_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.kap_port}"

    @property
    def jwks_url(self) -> str | None:
        if self.kap_jwks_url:
            return self.kap_jwks_url
        if self.supabase_url:
            return f"{self.supabase_url}/auth/v1/.well-known/jwks.json"
        return None

    @property
    def auto_migrate(self) -> bool:
        if self.kap_auto_migrate is not None:
            return self.kap_auto_migrate
        return not self.is_postgres

    def masked(self) -> dict[str, Any]:
        """Return the effective settings with secrets masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS and value:
                value = "****"
            elif name in URL_FIELDS_WITH_PASSWORDS and value:
                value = _mask_url_password(str(value))
            elif isinstance(value, Path):
                value = str(value)
            out[name.upper()] = value
        out["(database)"] = _mask_url_password(self.database_url)
        return out


def _mask_url_password(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:****@{host}"
    return url


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a settings validation error into one line naming the variable."""
    err = exc.errors()[0]
    loc = [str(part) for part in err.get("loc", ()) if part != "__root__"]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if loc:
        return f"invalid setting {loc[0].upper()}: {msg}"
    return msg


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else "a setting"
        raise ConfigError(f"invalid setting {field.upper()}: cannot be parsed") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings."""
    return load_settings()
