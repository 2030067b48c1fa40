"""Domain models (snake_case), independent of the wire format and of the table layout."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class ClassificationType(enum.StrEnum):
    MULTICLASS = "Multiclass"
    MULTILABEL = "Multilabel"


class TagType(enum.StrEnum):
    REGULAR = "Regular"
    NEGATIVE = "Negative"


class ImageCreateStatus(enum.StrEnum):
    OK = "OK"
    OK_DUPLICATE = "OKDuplicate"
    ERROR_SOURCE = "ErrorSource"
    ERROR_IMAGE_FORMAT = "ErrorImageFormat"
    ERROR_IMAGE_SIZE = "ErrorImageSize"
    ERROR_STORAGE = "ErrorStorage"
    ERROR_LIMIT_EXCEED = "ErrorLimitExceed"
    ERROR_REGION_LIMIT_EXCEED = "ErrorRegionLimitExceed"
    ERROR_TAG_LIMIT_EXCEED = "ErrorTagLimitExceed"
    ERROR_UNKNOWN = "ErrorUnknown"
    ERROR_NEGATIVE_AND_REGULAR_TAG_ON_SAME_IMAGE = "ErrorNegativeAndRegularTagOnSameImage"
    ERROR_IMAGE_DIMENSIONS = "ErrorImageDimensions"
    ERROR_INVALID_TAG = "ErrorInvalidTag"


class TaggingStatus(enum.StrEnum):
    ALL = "All"
    TAGGED = "Tagged"
    UNTAGGED = "Untagged"


class OrderBy(enum.StrEnum):
    NEWEST = "Newest"
    OLDEST = "Oldest"


class ProjectState(enum.StrEnum):
    ACTIVE = "Active"
    DELETING = "Deleting"


@dataclass
class Project:
    id: str
    name: str
    description: str
    domain_id: str
    classification_type: ClassificationType
    target_export_platforms: list[str]
    created: datetime
    last_modified: datetime
    state: ProjectState = ProjectState.ACTIVE
    status: str = "Succeeded"  # Custom Vision's import status: Succeeded, Importing or Failed


@dataclass
class Tag:
    id: str
    name: str
    description: str
    type: TagType
    image_count: int = 0


@dataclass(frozen=True)
class ImageTagRef:
    tag_id: str
    created: datetime


@dataclass(frozen=True)
class Box:
    """A rectangle as fractions of the image's width and height (after EXIF orientation)."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Region:
    """A labelled box on a training image of an object-detection project."""

    id: str
    tag_id: str
    created: datetime
    box: Box


@dataclass
class Image:
    id: str
    created: datetime
    width: int
    height: int
    sha256: str
    content_type: str
    tags: list[ImageTagRef] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    # Object detection: the image's boxes; its tags are then the tags of its regions.
    regions: list[Region] = field(default_factory=list)

    @property
    def tag_ids(self) -> list[str]:
        return [t.tag_id for t in self.tags]


@dataclass(frozen=True)
class ImageCreateOutcome:
    """What happened to one entry of an upload batch."""

    status: ImageCreateStatus
    source_url: str | None = None
    image: Image | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ImageCreateStatus.OK


class IterationStatus(enum.StrEnum):
    TRAINING = "Training"
    COMPLETED = "Completed"
    FAILED = "Failed"


class TrainingType(enum.StrEnum):
    REGULAR = "Regular"
    ADVANCED = "Advanced"


@dataclass
class Iteration:
    id: str
    name: str
    status: IterationStatus
    created: datetime
    last_modified: datetime
    domain_id: str
    classification_type: ClassificationType
    training_type: TrainingType
    reserved_budget_in_hours: int
    trained_at: datetime | None = None
    training_time_in_minutes: int = 0
    publish_name: str | None = None
    original_publish_resource_id: str | None = None
    training_error_details: str | None = None
    progress_stage: str = "Queued"
    progress_fraction: float = 0.0
    attempt: int = 0  # deliveries of the training job so far
    data_fingerprint: str = ""
    selected_tag_ids: list[str] = field(default_factory=list)
    notification_email: str | None = None
    seed: int = 0
