"""The training queue's message contract (trainings, exports and project imports), shared by
the function app and the trainer job.

Messages are base64-encoded JSON, as the Functions host and KEDA's azure-queue scaler expect.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainingJob:
    project_id: str
    iteration_id: str
    training_type: str  # Regular | Advanced
    reserved_budget_in_hours: int
    selected_tag_ids: list[str] = field(default_factory=list)  # empty: every tag
    seed: int = 0
    kind: str = "train"  # train | export | import | dataset
    platform: str = ""  # export jobs: what to build
    flavor: str = ""
    source_project_id: str = ""  # import jobs: the project whose images project_id receives

    @classmethod
    def of_kind(
        cls,
        kind: str,
        project_id: str,
        item_id: str,
        platform: str = "",
        flavor: str = "",
        source_project_id: str = "",
    ) -> TrainingJob:
        """A queued job that is not a training: an export (of iteration `item_id`), a project
        import or a dataset job (`item_id` the project's or the job's id)."""
        return cls(
            project_id,
            item_id,
            training_type="",
            reserved_budget_in_hours=0,
            kind=kind,
            platform=platform,
            flavor=flavor,
            source_project_id=source_project_id,
        )

    def encode(self) -> str:
        return base64.b64encode(json.dumps(asdict(self)).encode()).decode()

    @classmethod
    def decode(cls, text: str) -> TrainingJob:
        try:
            data: dict[str, Any] = json.loads(base64.b64decode(text, validate=True))
        except ValueError:
            data = json.loads(text)  # tolerate plain JSON put by hand
        return cls(
            project_id=str(data["project_id"]),
            iteration_id=str(data["iteration_id"]),
            training_type=str(data.get("training_type", "Regular")),
            reserved_budget_in_hours=int(data.get("reserved_budget_in_hours", 0)),
            selected_tag_ids=[str(t) for t in data.get("selected_tag_ids", [])],
            seed=int(data.get("seed", 0)),
            kind=str(data.get("kind", "train")),
            platform=str(data.get("platform", "")),
            flavor=str(data.get("flavor", "")),
            source_project_id=str(data.get("source_project_id", "")),
        )
