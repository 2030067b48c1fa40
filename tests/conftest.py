"""Shared fixtures: small real photos from ../shared/datasets and generated images."""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def jpeg_bytes(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (320, 240)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def real_photos(dataset: str, label: str, count: int) -> list[bytes]:
    folder = DATASETS / dataset / label
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    files = sorted(p for p in folder.iterdir() if p.is_file())[:count]
    return [p.read_bytes() for p in files]


@functools.cache
def registered_functions() -> dict[str, Any]:
    """The functions the Functions host would index (get_functions() may run once a process)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}
