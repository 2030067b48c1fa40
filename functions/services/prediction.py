"""Classifying one image with a published (or, for quick tests, any completed) iteration, and
storing the prediction with its image so that it can be reviewed and added to training."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from functions.domain import names
from functions.domain.catalog import is_detection
from functions.domain.detection_decode import decode
from functions.domain.errors import BadRequest, NotFound
from functions.domain.ids import id_time, new_time_ordered_id
from functions.domain.limits import MAX_PREDICTION_IMAGE_BYTES
from functions.domain.models import Box, Iteration
from functions.domain.predictions import Prediction, TagScore, scores_of, uncertainty
from functions.imaging import DecodedImage, ImageRejected, decode_image
from functions.services.iterations import completed_iteration, latest_completed
from functions.services.model_cache import LoadedModel, ModelCache
from functions.services.projects import read_active_project
from functions.services.url_fetch import UrlFetchError, UrlPolicy, fetch_url
from functions.storage.clients import Storage

log = logging.getLogger(__name__)

MAX_APPLICATION_LENGTH = 64
# Detect answers: boxes scoring at least 1 %, per-tag NMS at IoU 0.5, the best 100 (Custom
# Vision also answers low-probability boxes, for the client to threshold).
DETECT_SCORE_FLOOR = 0.01
DETECT_NMS_IOU = 0.5
MAX_DETECTIONS = 100

_IMAGE_CODES = {
    "ErrorImageSize": "BadRequestImageSizeBytes",
    "ErrorImageFormat": "BadRequestImageFormat",
    "ErrorImageDimensions": "BadRequestImageDimensions",
}


def invalid_iteration(project_id: str, publish_name: str) -> NotFound:
    return NotFound(
        "NotFound",
        f"Invalid iteration: no iteration of project {project_id} is published as "
        f"'{publish_name}'.",
    )


def validate_application(application: str | None) -> str | None:
    if application is None or application == "":
        return None
    if len(application) > MAX_APPLICATION_LENGTH or not application.isprintable():
        raise BadRequest(
            "BadRequestPredictionInvalidApplicationName",
            f"application is at most {MAX_APPLICATION_LENGTH} printable characters.",
        )
    return application


def fetch_image(url: str | None, policy: UrlPolicy) -> bytes:
    """An image URL's bytes under the SSRF guard, at most the prediction size limit."""
    if not url:
        raise BadRequest("BadRequestImageUrl", "The body needs a url.")
    try:
        return fetch_url(url, replace(policy, max_bytes=MAX_PREDICTION_IMAGE_BYTES))
    except UrlFetchError as error:
        raise BadRequest("BadRequestImageUrl", str(error)) from None


def decode_for(model: LoadedModel, data: bytes) -> DecodedImage:
    """Validate and decode an image for `model`; JPEGs decode at a reduced scale that still
    leaves twice the pixels the model's resize step needs (as training images were)."""
    need = 2 * model.preprocessing.resize_to

    def draft(width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, need / min(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    try:
        return decode_image(data, MAX_PREDICTION_IMAGE_BYTES, draft)
    except ImageRejected as rejected:
        code = _IMAGE_CODES.get(rejected.status, "BadRequestImageFormat")
        raise BadRequest(code, rejected.message) from None


def _wrong_endpoint(project_id: str, detect: bool) -> BadRequest:
    if detect:
        return BadRequest(
            "BadRequestNotSupported",
            f"Project {project_id} is a classification project: use classify, not detect.",
        )
    return BadRequest(
        "BadRequestNotSupported",
        f"Project {project_id} is an object-detection project: use detect, not classify.",
    )


def detections_of(model: LoadedModel, batch: np.ndarray) -> list[list[TagScore]]:
    """A detector's boxes for each image of a batch, highest probability first."""
    dense_boxes, dense_scores = model.run_dense(batch)
    found = []
    for boxes, scores in zip(dense_boxes, dense_scores, strict=True):
        kept = decode(boxes, scores, DETECT_SCORE_FLOOR, DETECT_NMS_IOU, MAX_DETECTIONS)
        found.append(
            [
                TagScore(
                    model.labels[int(c)].id,
                    model.labels[int(c)].name,
                    model.labels[int(c)].type,
                    float(p),
                    Box(*(float(v) for v in b)),
                )
                for b, p, c in zip(kept.boxes, kept.scores, kept.classes, strict=True)
            ]
        )
    return found


def doubt_of(model: LoadedModel, scores: list[TagScore]) -> float:
    """How unsure the model is of one image's scores (see predictions.uncertainty); a
    detector's is its most doubtful box's, 1 - |2p - 1| (0 when it found nothing)."""
    probabilities = np.array([s.probability for s in scores])
    return uncertainty(probabilities, model.multilabel or model.detects)


@dataclass
class PredictionService:
    storage: Storage
    models: ModelCache

    def classify_published(
        self,
        project_id: str,
        publish_name: str,
        data: bytes,
        store: bool,
        application: str | None = None,
        detect: bool = False,
    ) -> Prediction:
        """The prediction API: the iteration published as `publish_name` scores the image
        (`detect`: the detect endpoints, which need a detector, as classify needs a classifier)."""
        application = validate_application(application)
        iteration_id = self.models.published(project_id, publish_name)
        if iteration_id is None:
            project = read_active_project(self.storage, project_id)
            if is_detection(project.domain_id) != detect:
                raise _wrong_endpoint(project_id, detect)
            raise invalid_iteration(project_id, publish_name)
        if self.models.model(project_id, iteration_id).detects != detect:
            raise _wrong_endpoint(project_id, detect)
        return self._classify(project_id, iteration_id, data, store, application)

    def quick_test(
        self, project_id: str, iteration_id: str | None, data: bytes, store: bool
    ) -> Prediction:
        """The Training API's quick test: any completed iteration, the latest by default."""
        iteration = self._trained_iteration(project_id, iteration_id)
        return self._classify(project_id, iteration.id, data, store, None)

    def _trained_iteration(self, project_id: str, iteration_id: str | None) -> Iteration:
        if iteration_id is None:
            latest = latest_completed(self.storage, project_id)
            if latest is None:
                raise NotFound(
                    "NotFoundProjectDefaultIteration", "This project has no trained iteration yet."
                )
            return latest
        return completed_iteration(self.storage, project_id, iteration_id)

    def _classify(
        self,
        project_id: str,
        iteration_id: str,
        data: bytes,
        store: bool,
        application: str | None,
    ) -> Prediction:
        model = self.models.model(project_id, iteration_id)
        decoded = decode_for(model, data)
        batch = model.input_array(decoded.rgb)[np.newaxis]
        if model.detects:
            scores = detections_of(model, batch)[0]
        else:
            scores = scores_of(model.labels, model.run(batch)[0])
        current = self.models.tag_names(project_id)  # a tag renamed since training
        scores = [replace(s, tag_name=current.get(s.tag_id, s.tag_name)) for s in scores]
        prediction_id = new_time_ordered_id()
        prediction = Prediction(
            id=prediction_id,
            project_id=project_id,
            iteration_id=iteration_id,
            created=id_time(prediction_id),
            scores=scores,
            uncertainty=doubt_of(model, scores),
            application=application,
            domain_id=model.domain_id,
            width=decoded.width,
            height=decoded.height,
        )
        if store:
            self._store(prediction, data, decoded.content_type)
        return prediction

    def _store(self, prediction: Prediction, data: bytes, content_type: str) -> None:
        """The original bytes first, then the rows that point at them: once this returns, the
        prediction is stored. Its resized copy and thumbnail are derived from the original on
        their first read (StoredPredictions.image), so a prediction nobody looks at costs one
        blob and its rows."""
        blobs = self.storage.blobs
        path = names.image_blob_path(prediction.project_id, prediction.id, "original")
        try:
            blobs.put(names.CONTAINER_PREDICTIONS, path, data, content_type)
            self.storage.predictions.add(prediction)
        except Exception:
            log.exception("storing prediction %s failed", prediction.id)
            blobs.delete_prefix(
                names.CONTAINER_PREDICTIONS, f"{prediction.project_id}/{prediction.id}/"
            )
            raise
