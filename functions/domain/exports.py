"""Exports of a trained iteration: the platforms and flavors offered, and an export's record.

Platform and flavor names are Custom Vision's where it has them (`ONNX`, `OpenVino`,
`TensorFlow` + `TensorFlowNormal` (SavedModel) / `TensorFlowLite`, `CoreML`, `DockerFile` +
`Linux`/`ARM`); `ONNXFloat16` and `ONNXInt8` are our own ONNX flavors. The trainer job builds
the files (trainer_job/exports/); the function app only records requests and hands out
download links.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from functions.domain.errors import BadRequest

# platform -> accepted flavors; the first is what an empty flavor means
EXPORT_FLAVORS: dict[str, tuple[str, ...]] = {
    "ONNX": ("", "ONNXFloat16", "ONNXInt8"),
    "OpenVino": ("",),
    "TensorFlow": ("TensorFlowNormal", "TensorFlowLite"),
    "CoreML": ("",),
    "DockerFile": ("Linux", "ARM"),
}

# Bumped when the exporters change, so that older exports report newerVersionAvailable.
EXPORTER_VERSION = 1


class ExportStatus(enum.StrEnum):
    EXPORTING = "Exporting"
    DONE = "Done"
    FAILED = "Failed"


@dataclass(frozen=True)
class ExportRecord:
    project_id: str
    iteration_id: str
    platform: str
    flavor: str  # "" for the platform's default
    status: ExportStatus
    created: datetime
    last_modified: datetime
    exporter_version: int = EXPORTER_VERSION
    error: str | None = None
    size_bytes: int = 0

    @property
    def file_name(self) -> str:
        return f"{self.platform}{'-' + self.flavor if self.flavor else ''}.zip"

    @property
    def newer_version_available(self) -> bool:
        return self.status is ExportStatus.DONE and self.exporter_version < EXPORTER_VERSION


def export_blob_path(project_id: str, iteration_id: str, file_name: str) -> str:
    """Where an export's zip lives in the `exports` container."""
    return f"{project_id}/{iteration_id}/{file_name}"


def parse_target(platform: str | None, flavor: str | None) -> tuple[str, str]:
    """(platform, flavor) with Custom Vision's spelling, or its error for an unknown one."""
    by_lower = {p.lower(): p for p in EXPORT_FLAVORS}
    chosen = by_lower.get((platform or "").strip().lower())
    if chosen is None:
        raise BadRequest(
            "BadRequestProjectUnsupportedExportPlatform",
            f"Unknown export platform '{platform}'; use one of {', '.join(EXPORT_FLAVORS)}.",
        )
    flavors = EXPORT_FLAVORS[chosen]
    wanted = (flavor or "").strip().lower()
    if not wanted:
        return chosen, flavors[0]
    match = next((f for f in flavors if f and f.lower() == wanted), None)
    if match is None:
        offered = ", ".join(f for f in flavors if f) or "none"
        raise BadRequest(
            "BadRequestExportValidationFailed",
            f"Platform {chosen} has no flavor '{flavor}'; flavors: {offered}.",
        )
    return chosen, match
