"""Service settings: defaults here, overridable by BERT4REC_SERVE_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
