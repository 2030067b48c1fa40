"""The counts on both sides after a copy, and a table of them."""

from __future__ import annotations

from dataclasses import dataclass

from tools.migrate.copier import Endpoint, ProjectReport


@dataclass(frozen=True)
class Count:
    what: str
    source: int
    target: int

    @property
    def equal(self) -> bool:
        return self.source == self.target


def _regions(endpoint: Endpoint, project_id: str) -> int:
    pages = endpoint.pages("get_images", project_id)
    return sum(len(image.regions or []) for page in pages for image in page)


def counts(source: Endpoint, target: Endpoint, report: ProjectReport) -> list[Count]:
    """Tags, tagged and untagged images, regions and each tag's images, source against target."""
    sid, tid = report.source_id, report.target_id
    source_tags = {t.name.lower(): t for t in source("get_tags", sid)}
    target_tags = {t.name.lower(): t for t in target("get_tags", tid)}
    rows = [
        Count("tags", len(source_tags), len(target_tags)),
        Count(
            "tagged images",
            source("get_tagged_image_count", sid),
            target("get_tagged_image_count", tid),
        ),
        Count(
            "untagged images",
            source("get_untagged_image_count", sid),
            target("get_untagged_image_count", tid),
        ),
        Count("regions", report.source_regions, _regions(target, tid)),
    ]
    for key, tag in sorted(source_tags.items()):
        mine = target_tags.get(key)
        rows.append(
            Count(f"images tagged {tag.name}", tag.image_count, mine.image_count if mine else 0)
        )
    return rows


def table(report: ProjectReport, rows: list[Count]) -> str:
    lines = [
        f"{report.name}: {report.copied} copied, {report.duplicates} already there (identical "
        f"bytes), {report.already} skipped as copied before, {len(report.failed)} failed, "
        f"{report.images_per_second:.1f} images/s",
        f"| {'count':<28} | {'source':>7} | {'target':>7} | equal |",
        f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|-------|",
    ]
    lines += [
        f"| {r.what[:28]:<28} | {r.source:>7} | {r.target:>7} | {'yes' if r.equal else 'NO':<5} |"
        for r in rows
    ]
    lines += [f"  failed {image}: {why}" for image, why in report.failed]
    return "\n".join(lines)
