"""Names of tables, containers and queues, and the blob path builders.

Infra (Bicep, Terraform) uses the same names; a test checks that they agree.
"""

TABLE_PROJECTS = "projects"
TABLE_TAGS = "tags"
TABLE_IMAGES = "images"
TABLE_ITERATIONS = "iterations"
TABLE_PREDICTIONS = "predictions"
TABLE_SUGGESTIONS = "suggestions"
TABLES = (
    TABLE_PROJECTS,
    TABLE_TAGS,
    TABLE_IMAGES,
    TABLE_ITERATIONS,
    TABLE_PREDICTIONS,
    TABLE_SUGGESTIONS,
)

CONTAINER_IMAGES = "images"
CONTAINER_MODELS = "models"
CONTAINER_EXPORTS = "exports"
CONTAINER_INGEST = "ingest"
CONTAINER_INGEST_REJECTED = "ingest-rejected"
CONTAINER_PREDICTIONS = "predictions"
CONTAINERS = (
    CONTAINER_IMAGES,
    CONTAINER_PREDICTIONS,
    CONTAINER_MODELS,
    CONTAINER_EXPORTS,
    CONTAINER_INGEST,
    CONTAINER_INGEST_REJECTED,
)

QUEUE_TRAINING = "training-requests"
QUEUE_TRAINING_POISON = "training-requests-poison"
QUEUES = (QUEUE_TRAINING, QUEUE_TRAINING_POISON)

IMAGE_VARIANTS = ("original", "resized", "thumbnail")


def project_image_prefix(project_id: str) -> str:
    return f"{project_id}/"


def image_blob_path(project_id: str, image_id: str, variant: str) -> str:
    """Where one variant (original, resized, thumbnail) of an image lives: a training image in
    CONTAINER_IMAGES, or the image of a stored prediction in CONTAINER_PREDICTIONS."""
    if variant not in IMAGE_VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}")
    return f"{project_id}/{image_id}/{variant}"
