"""Datasets in and out (an extension beside Custom Vision's API): export a project's labelled
images as a zip in COCO, Pascal VOC, YOLO or one folder per tag, or import one; both run as
queued jobs whose progress these routes report."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from functions.api.deps import ProjectDep, Services, ServicesDep, base_url
from functions.api.schemas.datasets import DatasetJobOut
from functions.domain.dataset_jobs import EXPORT, DatasetJob, DatasetJobStatus
from functions.domain.errors import BadRequest

router = APIRouter(tags=["datasets"])
PATH = "/projects/{projectId}/datasets"
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # an upload larger than this waits on disk


def _out(
    services: Services, request: Request, job: DatasetJob, whole: bool = False
) -> DatasetJobOut:
    link = None
    if job.operation == EXPORT and job.status is DatasetJobStatus.DONE:
        link = services.links.link(
            base_url(request), job.project_id, job.id, job.file_name, "exports"
        )
    report = services.datasets.report(job) if whole and job.operation != EXPORT else None
    return DatasetJobOut.of(job, link, report)


@router.post(PATH + "/export", status_code=202, response_model=DatasetJobOut)
def export_dataset(
    services: ServicesDep, request: Request, project: ProjectDep, format: str | None = None
) -> DatasetJobOut:
    """Queue an archive of the project's images with their labels: `format` is `coco`,
    `voc` or `yolo` for object detection, `folders` for classification. The job's
    `downloadUri` points to the zip once its `status` is Done."""
    return _out(services, request, services.datasets.start_export(project, format))


@router.post(PATH + "/import", status_code=202, response_model=DatasetJobOut)
async def import_dataset(
    services: ServicesDep, request: Request, project: ProjectDep, format: str | None = None
) -> DatasetJobOut:
    """Queue the import of the zip archive sent as the body (`Content-Type: application/zip`):
    tags missing from the project are created, regions kept; images the project holds
    already are counted as duplicates and named in the job's `duplicateNames`."""
    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as upload:
        async for chunk in request.stream():
            upload.write(chunk)
        if upload.tell() == 0:
            raise BadRequest("BadRequestInvalid", "The request holds no archive.")
        upload.seek(0)
        job = await run_in_threadpool(services.datasets.start_import, project, format, upload)
    return _out(services, request, job)


@router.get(PATH + "/jobs", response_model=list[DatasetJobOut])
def list_dataset_jobs(
    services: ServicesDep, request: Request, project: ProjectDep
) -> list[DatasetJobOut]:
    return [_out(services, request, job) for job in services.datasets.list(project)]


@router.get(PATH + "/jobs/{jobId}", response_model=DatasetJobOut)
def get_dataset_job(
    services: ServicesDep, request: Request, project: ProjectDep, jobId: str
) -> DatasetJobOut:
    return _out(services, request, services.datasets.get(project, jobId), whole=True)


@router.delete(PATH + "/jobs/{jobId}", status_code=204)
def delete_dataset_job(services: ServicesDep, project: ProjectDep, jobId: str) -> Response:
    """Forget the job and delete its files; a running job stops."""
    services.datasets.delete(project, jobId)
    return Response(status_code=204)
