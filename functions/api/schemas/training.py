"""Training API wire models and the mappers from domain models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from functions.api.schemas.regions import ImageRegionOut, RegionIn
from functions.api.schemas.wire import Wire
from functions.domain.catalog import Domain as DomainInfo
from functions.domain.models import Image, ImageCreateOutcome, Project, Tag
from functions.services.project_transfer import ProjectExport
from functions.services.projects import ProjectListing

LinkFn = Callable[[str, str, str], str]


class ModelInformation(Wire):
    estimatedModelSizeInMegabytes: int
    description: str


class Domain(Wire):
    id: str
    name: str
    type: str = "Classification"
    exportable: bool
    enabled: bool = True
    exportablePlatforms: list[str]
    modelInformation: ModelInformation

    @classmethod
    def of(cls, d: DomainInfo) -> Domain:
        return cls(
            id=d.id,
            name=d.name,
            type=d.type,
            exportable=bool(d.exportable_platforms),
            exportablePlatforms=d.exportable_platforms,
            modelInformation=ModelInformation(
                estimatedModelSizeInMegabytes=d.model_megabytes, description=d.description
            ),
        )


class ProjectSettings(Wire):
    domainId: str | None = None
    classificationType: str | None = None
    targetExportPlatforms: list[str] | None = None
    useNegativeSet: bool | None = True
    detectionParameters: str | None = None
    imageProcessingSettings: dict[str, object] | None = None


class ProjectOut(Wire):
    id: str
    name: str
    description: str
    settings: ProjectSettings
    created: datetime
    lastModified: datetime
    thumbnailUri: str | None = None
    drModeEnabled: bool = False
    status: str = "Succeeded"

    @classmethod
    def of(cls, p: Project, cover_image_id: str | None, link: LinkFn) -> ProjectOut:
        return cls(
            id=p.id,
            name=p.name,
            description=p.description,
            settings=ProjectSettings(
                domainId=p.domain_id,
                classificationType=p.classification_type.value,
                targetExportPlatforms=p.target_export_platforms,
            ),
            created=p.created,
            lastModified=p.last_modified,
            thumbnailUri=link(p.id, cover_image_id, "thumbnail") if cover_image_id else None,
            status=p.status,
        )


class ProjectExportOut(Wire):
    iterationCount: int
    imageCount: int
    tagCount: int
    regionCount: int
    estimatedImportTimeInMS: int
    token: str

    @classmethod
    def of(cls, e: ProjectExport) -> ProjectExportOut:
        return cls(
            iterationCount=e.iteration_count,
            imageCount=e.image_count,
            tagCount=e.tag_count,
            regionCount=e.region_count,
            estimatedImportTimeInMS=e.estimated_import_time_in_ms,
            token=e.token,
        )


class ProjectSummaryOut(ProjectOut):
    """The portal's project card: the project with its image and tag counts."""

    imageCount: int
    tagCount: int

    @classmethod
    def listed(cls, listing: ProjectListing, link: LinkFn) -> ProjectSummaryOut:
        project = ProjectOut.of(listing.project, listing.newest_image_id, link)
        return cls(
            **project.model_dump(), imageCount=listing.image_count, tagCount=listing.tag_count
        )


class ProjectPatch(Wire):
    name: str | None = None
    description: str | None = None
    settings: ProjectSettings | None = None


class TagOut(Wire):
    id: str
    name: str
    description: str
    type: str
    imageCount: int

    @classmethod
    def of(cls, t: Tag) -> TagOut:
        return cls(
            id=t.id,
            name=t.name,
            description=t.description,
            type=t.type.value,
            imageCount=t.image_count,
        )


class TagPatch(Wire):
    name: str | None = None
    description: str | None = None
    type: str | None = None


class ImageTagOut(Wire):
    tagId: str
    tagName: str
    created: datetime


class ImageOut(Wire):
    id: str
    created: datetime
    width: int
    height: int
    resizedImageUri: str
    thumbnailUri: str
    originalImageUri: str
    tags: list[ImageTagOut]
    regions: list[ImageRegionOut] | None = None
    metadata: dict[str, str]


class ImageCreateResultOut(Wire):
    sourceUrl: str | None
    status: str
    image: ImageOut | None
    message: str | None = None  # our addition: why an entry failed


class ImageCreateSummaryOut(Wire):
    isBatchSuccessful: bool
    images: list[ImageCreateResultOut]


class ImageFileEntry(Wire):
    name: str | None = None
    contents: str | None = None
    tagIds: list[str] | None = None
    regions: list[RegionIn] | None = None


class ImageFileBatch(Wire):
    images: list[ImageFileEntry] | None = None
    tagIds: list[str] | None = None
    metadata: dict[str, str] | None = None


class ImageUrlEntry(Wire):
    url: str | None = None
    tagIds: list[str] | None = None
    regions: list[RegionIn] | None = None


class ImageUrlBatch(Wire):
    images: list[ImageUrlEntry] | None = None
    tagIds: list[str] | None = None
    metadata: dict[str, str] | None = None


class ImageTagPair(Wire):
    imageId: str
    tagId: str


class ImageTagBatch(Wire):
    tags: list[ImageTagPair] | None = None


class ImageTagSummaryOut(Wire):
    created: list[ImageTagPair]
    duplicated: list[ImageTagPair]
    exceeded: list[ImageTagPair]


class ImageMetadataEntryOut(Wire):
    imageId: str
    status: str
    metadata: dict[str, str] | None


class ImageMetadataSummaryOut(Wire):
    isBatchSuccessful: bool
    images: list[ImageMetadataEntryOut]


class ImageMapper:
    """Turns domain images into wire images: tag names and signed blob links."""

    def __init__(self, project_id: str, tag_names: dict[str, str], link: LinkFn) -> None:
        self.project_id = project_id
        self.tag_names = tag_names
        self.link = link

    def image(self, i: Image) -> ImageOut:
        return ImageOut(
            id=i.id,
            created=i.created,
            width=i.width,
            height=i.height,
            resizedImageUri=self.link(self.project_id, i.id, "resized"),
            thumbnailUri=self.link(self.project_id, i.id, "thumbnail"),
            originalImageUri=self.link(self.project_id, i.id, "original"),
            tags=[
                ImageTagOut(
                    tagId=t.tag_id, tagName=self.tag_names.get(t.tag_id, ""), created=t.created
                )
                for t in i.tags
            ],
            regions=[
                ImageRegionOut.of_region(r, self.tag_names.get(r.tag_id, "")) for r in i.regions
            ],
            metadata=i.metadata,
        )

    def outcome(self, o: ImageCreateOutcome) -> ImageCreateResultOut:
        return ImageCreateResultOut(
            sourceUrl=o.source_url,
            status=o.status.value,
            image=self.image(o.image) if o.image else None,
            message=o.message,
        )
