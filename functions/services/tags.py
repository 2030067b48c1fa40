"""Tag use cases: names unique per project ignoring case, one Negative tag at most."""

from __future__ import annotations

from dataclasses import dataclass, replace

from functions.domain.errors import BadRequest, tag_not_found
from functions.domain.ids import new_id
from functions.domain.image_edits import without_tags
from functions.domain.limits import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TAG_NAME_LENGTH,
    MAX_TAGS_PER_PROJECT,
)
from functions.domain.models import Tag, TagType
from functions.domain.validation import choice, optional_text, required_text
from functions.services import iteration_snapshots
from functions.services.projects import detects_objects
from functions.storage.clients import Storage


@dataclass(frozen=True)
class TagChanges:
    name: str | None = None
    description: str | None = None
    type: str | None = None


def _name(value: str | None) -> str:
    return required_text(value, MAX_TAG_NAME_LENGTH, "BadRequestTagName", "A tag name")


def _description(value: str | None) -> str:
    return optional_text(value, MAX_DESCRIPTION_LENGTH, "BadRequestTagDescription", "A description")


def _no_negative_in_detection() -> BadRequest:
    return BadRequest(
        "BadRequestTagType",
        "An object-detection project has no Negative tag: a photo without objects is simply "
        "an image without regions.",
    )


class TagService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def all(self, project_id: str, iteration_id: str | None = None) -> list[Tag]:
        """The project's tags with their image counts; with `iteration_id`, the tags that
        iteration was trained on, counted then, under their current names."""
        snapshot = iteration_snapshots.load(self.storage, project_id, iteration_id)
        tags = self.storage.tags.list(project_id)
        if snapshot is not None:
            current = {t.id: t.name for t in tags}
            return [replace(t, name=current.get(t.id, t.name)) for t in snapshot.tags]
        counts = self.storage.images.tag_counts(project_id)
        return [replace(t, image_count=counts.get(t.id, 0)) for t in tags]

    def get(self, project_id: str, tag_id: str, iteration_id: str | None = None) -> Tag:
        if iteration_snapshots.load(self.storage, project_id, iteration_id) is not None:
            found = [t for t in self.all(project_id, iteration_id) if t.id == tag_id]
            if not found:
                raise tag_not_found(tag_id)
            return found[0]
        tag = self.storage.tags.get(project_id, tag_id)
        if tag is None:
            raise tag_not_found(tag_id)
        count = self.storage.images.tag_counts(project_id).get(tag_id, 0)
        return replace(tag, image_count=count)

    def find_by_name(self, project_id: str, name: str) -> Tag | None:
        """The tag of that name, ignoring case."""
        return self.storage.tags.find_by_name(project_id, name)

    def create(
        self,
        project_id: str,
        name: str | None,
        description: str | None = None,
        type_: str | None = None,
    ) -> Tag:
        tag = Tag(
            new_id(),
            _name(name),
            _description(description),
            choice(TagType, type_, TagType.REGULAR, "BadRequestTagType", "tag type"),
        )
        if tag.type is TagType.NEGATIVE and detects_objects(self.storage, project_id):
            raise _no_negative_in_detection()
        existing = self.storage.tags.list(project_id)
        if len(existing) >= MAX_TAGS_PER_PROJECT:
            raise BadRequest(
                "BadRequestExceedTagPerProjectLimit",
                f"A project holds at most {MAX_TAGS_PER_PROJECT} tags.",
            )
        if tag.type is TagType.NEGATIVE and any(t.type is TagType.NEGATIVE for t in existing):
            raise BadRequest(
                "BadRequestMultipleNegativeTag", "A project has one Negative tag at most."
            )
        self.storage.tags.insert(project_id, tag)
        return tag

    def missing(self, project_id: str, wanted: list[str]) -> list[str]:
        """The names among `wanted` that no tag of the project has (ignoring case), checked as
        new tags' names and against the project's tag limit."""
        known = {t.name.lower() for t in self.storage.tags.list(project_id)}
        new = list({_name(n).lower(): _name(n) for n in wanted if n.lower() not in known}.values())
        if len(known) + len(new) > MAX_TAGS_PER_PROJECT:
            raise BadRequest(
                "BadRequestExceedTagPerProjectLimit",
                f"A project holds at most {MAX_TAGS_PER_PROJECT} tags; this would make "
                f"{len(known) + len(new)}.",
            )
        return new

    def ensure(self, project_id: str, wanted: list[str]) -> tuple[dict[str, Tag], list[str]]:
        """Tags of those names (ignoring case), made where missing: {lower name: tag} and the
        names created. A tag another client creates meanwhile is used, not duplicated."""
        created = []
        for name in self.missing(project_id, wanted):
            try:
                self.create(project_id, name)
                created.append(name)
            except BadRequest as error:
                if error.code != "BadRequestTagNameNotUnique":
                    raise
        return {t.name.lower(): t for t in self.storage.tags.list(project_id)}, created

    def update(self, project_id: str, tag_id: str, changes: TagChanges) -> Tag:
        name = _name(changes.name) if changes.name is not None else None
        description = _description(changes.description) if changes.description is not None else None

        def apply(before: Tag) -> Tag:
            after = replace(
                before,
                name=name if name is not None else before.name,
                description=description if description is not None else before.description,
                type=choice(TagType, changes.type, before.type, "BadRequestTagType", "tag type"),
            )
            if after.type is TagType.NEGATIVE and before.type is not TagType.NEGATIVE:
                if detects_objects(self.storage, project_id):
                    raise _no_negative_in_detection()
                others = self.storage.tags.list(project_id)
                if any(t.type is TagType.NEGATIVE for t in others):
                    raise BadRequest(
                        "BadRequestMultipleNegativeTag", "A project has one Negative tag at most."
                    )
            return after

        updated = self.storage.tags.edit(project_id, tag_id, apply)
        if updated is None:
            raise tag_not_found(tag_id)
        count = self.storage.images.tag_counts(project_id).get(tag_id, 0)
        return replace(updated, image_count=count)

    def delete(self, project_id: str, tag_id: str) -> None:
        """Remove the tag, then the tag from its images (safe to repeat and to race).

        The tag row goes first, so writers that add this tag afterwards find it gone; see
        images.drop_vanished_tags for writers that read it just before."""
        tag = self.get(project_id, tag_id)
        self.storage.tags.delete(project_id, tag)
        self.remove_from_images(project_id, tag_id)

    def remove_from_images(self, project_id: str, tag_id: str) -> None:
        """Take a deleted tag off every image that still carries it, and drop its counters."""
        images = self.storage.images
        for image in list(images.iter_tag(project_id, tag_id)):
            images.edit(project_id, image.id, lambda current: without_tags(current, {tag_id}))
        images.delete_tag_counter(project_id, tag_id)
