"""The base of every wire model: camelCase fields exactly as Custom Vision names them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")
