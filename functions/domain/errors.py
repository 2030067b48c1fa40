"""Errors as values with Custom Vision's stable codes; the API maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the caller caused or can act on, with a Custom Vision error code."""

    http_status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BadRequest(DomainError):
    http_status = 400


class Unauthorized(DomainError):
    http_status = 401


class NotFound(DomainError):
    http_status = 404


class Conflict(DomainError):
    http_status = 409


class PayloadTooLarge(DomainError):
    http_status = 413


class UnsupportedMediaType(DomainError):
    http_status = 415


class ServiceError(DomainError):
    http_status = 500


class ServiceUnavailable(DomainError):
    """A passing condition (storage unreachable, a row under heavy contention): retry later."""

    http_status = 503


def project_not_found(project_id: str) -> NotFound:
    return NotFound("NotFoundProject", f"Project {project_id} was not found.")


def tag_not_found(tag_id: str) -> NotFound:
    return NotFound("NotFoundTag", f"Tag {tag_id} was not found in this project.")


def image_not_found(image_id: str) -> NotFound:
    return NotFound("NotFoundImage", f"Image {image_id} was not found in this project.")
