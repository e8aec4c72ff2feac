"""Service settings: defaults here, overridable by BERT4REC_SERVE_* environment variables.

A service bound to anything but a loopback address needs a bearer token
(`BERT4REC_SERVE_TOKEN` or `bert4rec serve --token-file`): `check_exposure` refuses to start
without one. Requests must name an allowed host in their Host header (DNS rebinding cannot
then reach a loopback service from a browser page), and `by_user` says whether `/recommend`
answers for a user id, and whether it returns that user's stored history.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bert4rec.errors import SettingsError

MIN_TOKEN = 16
"""Fewest characters a bearer token may have."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
"""Host header values a loopback service accepts by default."""
EVERY_INTERFACE = ("0.0.0.0", "::", "")
ByUser = Literal["on", "no-history", "off"]


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServeSettings(BaseSettings):
    """How `bert4rec serve` listens and what it accepts."""

    model_config = SettingsConfigDict(env_prefix="BERT4REC_SERVE_")

    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 exposes the service")
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="largest request body accepted")
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op threads per forward pass; unset: fitted to the free "
        "cores at start and every few seconds after (training/threads.py)",
    )
    batch_window_ms: float = Field(
        1.0, ge=0, le=100, description="how long a /recommend request waits for others to "
        "share its forward pass (dynamic micro-batching); 0 batches only what is already queued",
    )
    max_batch: int = Field(64, ge=1, description="most /recommend requests in one forward pass")
    token: SecretStr | None = Field(
        None, description="bearer token that every request but GET /health must send "
        "(`Authorization: Bearer TOKEN`); required when host is not a loopback address",
    )
    allowed_hosts: list[str] | None = Field(
        None, description="Host header values accepted (others get 400); default: the loopback "
        "names and host, or any host when bound to every interface (the token guards it)",
    )
    by_user: ByUser = Field(
        "on", description="POST /recommend for a user id: 'on' answers with the user's stored "
        "history, 'no-history' answers without returning it, 'off' refuses (403)",
    )

    @field_validator("token")
    @classmethod
    def _usable_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        value = token.get_secret_value()
        if len(value) < MIN_TOKEN or not value.isascii() or not value.isprintable() \
                or " " in value:
            raise ValueError(f"the token must be at least {MIN_TOKEN} printable ASCII "
                             "characters without spaces")
        return token

    def hosts(self) -> list[str]:
        """The Host header values the service accepts."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if self.host in EVERY_INTERFACE:
            return ["*"]
        return list(dict.fromkeys([*LOOPBACK_NAMES, self.host.strip("[]")]))

    def check_exposure(self) -> None:
        """Refuse to serve beyond this machine without a token."""
        if self.token is None and not is_loopback(self.host):
            raise SettingsError(
                f"--host {self.host} exposes the service beyond this machine: give it a bearer "
                "token (--token-file FILE, or BERT4REC_SERVE_TOKEN), at least "
                f"{MIN_TOKEN} characters; clients then send 'Authorization: Bearer TOKEN'"
            )
