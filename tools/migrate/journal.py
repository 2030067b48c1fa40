"""What a migration has copied, kept in a JSON file so that a second or interrupted run picks
up where the last one stopped: per (source, target) pair of endpoints, each source project's
copy and the source id of every tag and image against its copy's."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


@dataclass
class ProjectCopy:
    target_id: str
    tags: dict[str, str] = field(default_factory=dict)  # source tag id -> target tag id
    images: dict[str, str] = field(default_factory=dict)  # source image id -> target image id


class Journal:
    """The copies of one (source, target) pair, saved atomically by `save`."""

    def __init__(self, path: Path, source: str, target: str) -> None:
        self.path = path
        self.pair = f"{source.rstrip('/')} -> {target.rstrip('/')}"
        self._all: dict[str, Any] = {"version": VERSION, "pairs": {}}
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if loaded.get("version") != VERSION:
                raise SystemExit(f"{path} was written by another version of this tool")
            self._all = loaded
        pairs = self._all["pairs"].setdefault(self.pair, {})
        self.projects: dict[str, ProjectCopy] = {
            source_id: ProjectCopy(entry["target"], entry["tags"], entry["images"])
            for source_id, entry in pairs.items()
        }

    def save(self) -> None:
        self._all["pairs"][self.pair] = {
            source_id: {"target": copy.target_id, "tags": copy.tags, "images": copy.images}
            for source_id, copy in self.projects.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self._all, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.path)
