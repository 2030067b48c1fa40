"""One typed Settings object, read from the environment once and validated at startup."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


DEFAULT_TRAINING_KEY = "local-training-key"
DEFAULT_PREDICTION_KEY = "local-prediction-key"
_LOOPBACK = re.compile(r"(Endpoint|EndpointSuffix)=https?://(127\.0\.0\.1|localhost)[:/]", re.I)


class Settings(BaseSettings):
    """Configuration. Environment variables are the field names prefixed with CV_."""

    model_config = SettingsConfigDict(env_prefix="CV_", extra="ignore")

    # Storage: a connection string (Azurite locally), or an account name reached with
    # DefaultAzureCredential (managed identity in Azure). Exactly one is used.
    storage_connection_string: str | None = None
    storage_account_name: str | None = None

    training_key: str = Field(default=DEFAULT_TRAINING_KEY, min_length=8)
    prediction_key: str = Field(default=DEFAULT_PREDICTION_KEY, min_length=8)

    # `make run` listens here: loopback only, unless you choose to expose it (0.0.0.0).
    host: str = "127.0.0.1"
    # The scheme and host of signed links (originalImageUri, downloadUri...), e.g.
    # https://vision.example.com. Unset: the function app's own host name in Azure
    # (WEBSITE_HOSTNAME), else the address the server was reached at. Never the Host header.
    public_base_url: str | None = None
    website_hostname: str | None = Field(default=None, validation_alias="WEBSITE_HOSTNAME")

    # Hosts or CIDRs that image URLs may resolve to even though they are private
    # (e.g. "127.0.0.0/8" in tests). Empty: only public addresses.
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    url_timeout_seconds: float = 10.0
    url_max_redirects: int = 3

    # How long the image links in Image JSON stay valid.
    image_link_ttl_seconds: int = 3600

    # Trainer: a message stays invisible this long after a worker dies, then is retried;
    # after `trainer_max_deliveries` attempts the iteration fails and the message goes to
    # the poison queue.
    trainer_visibility_seconds: int = Field(default=300, ge=5)
    trainer_max_deliveries: int = Field(default=3, ge=1)
    trainer_poll_seconds: float = 0.5
    # The random seed of every training (sampling, augmentation, initialisation): set it to
    # reproduce a training exactly; unset, each iteration draws its own (kept in its manifest).
    training_seed: int | None = None

    # Prediction: the most memory (MB of model files) kept as loaded onnxruntime sessions;
    # onnxruntime intra-op threads per session (1: each request runs on one core and
    # concurrent requests fill the others, the fastest on 2 cores, see bench/predict.py;
    # 0: onnxruntime's default, all cores per request); how long a published name is trusted
    # before it is looked up again (other instances see publish changes within this time);
    # how many days stored predictions are kept (Custom Vision keeps them 30 days).
    model_cache_mb: int = Field(default=1024, ge=1)
    onnx_threads: int = Field(default=1, ge=0)
    publish_name_ttl_seconds: float = Field(default=10.0, ge=0)
    prediction_retention_days: float = Field(default=30.0, gt=0)

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        # A path is kept (a reverse proxy may serve the API under one); a query is not.
        if value and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(
                "CV_PUBLIC_BASE_URL is an absolute http(s) URL without query, e.g. "
                "https://vision.example.com"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, values: dict[str, object]) -> dict[str, object]:
        raw = values.get("url_allowlist")
        if isinstance(raw, str):
            values["url_allowlist"] = [p.strip() for p in raw.split(",") if p.strip()]
        return values

    @model_validator(mode="after")
    def _one_storage(self) -> Settings:
        if self.storage_connection_string and self.storage_account_name:
            raise ValueError(
                "Set CV_STORAGE_CONNECTION_STRING or CV_STORAGE_ACCOUNT_NAME, not both."
            )
        if not self.storage_connection_string and not self.storage_account_name:
            self.storage_connection_string = AZURITE_CONNECTION_STRING
        return self

    def check_keys(self) -> None:
        """Refuse to serve with the well-known default keys anywhere but on local storage."""
        defaults = {self.training_key, self.prediction_key} & {
            DEFAULT_TRAINING_KEY,
            DEFAULT_PREDICTION_KEY,
        }
        if defaults and not self.local:
            raise ValueError(
                "CV_TRAINING_KEY and CV_PREDICTION_KEY must be set to your own secrets: the "
                "default keys are accepted only with local storage (Azurite)."
            )

    @property
    def local(self) -> bool:
        """Storage is an emulator on this machine (Azurite): the default keys are allowed."""
        return bool(
            self.storage_connection_string and _LOOPBACK.search(self.storage_connection_string)
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
