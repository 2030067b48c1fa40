"""Dependencies for the routers: the services, the caller's key, the project in the path.

`Services.build` is the one composition root: the HTTP app, the Functions triggers and
`make run` all get their services from it (the trainer builds only `Storage.from_settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Request

from functions.api.links import LinkSigner
from functions.domain.ids import parse_id
from functions.domain.models import Project
from functions.services.datasets import DatasetService
from functions.services.exports import ExportService
from functions.services.image_queries import ImageQueries
from functions.services.images import ImageService
from functions.services.ingest import IngestService
from functions.services.iterations import IterationService
from functions.services.model_cache import ModelCache
from functions.services.orphans import OrphanSweeper
from functions.services.performance import PerformanceService
from functions.services.prediction import PredictionService
from functions.services.project_transfer import ImportTokens, ProjectTransfer
from functions.services.projects import ProjectService
from functions.services.regions import RegionService
from functions.services.stored_predictions import StoredPredictions
from functions.services.suggestions import SuggestionService
from functions.services.tags import TagService
from functions.services.training import TrainingService
from functions.services.url_fetch import UrlPolicy
from functions.settings import Settings
from functions.storage.clients import Storage


@dataclass(frozen=True)
class Services:
    settings: Settings
    storage: Storage
    projects: ProjectService
    tags: TagService
    images: ImageService
    regions: RegionService
    queries: ImageQueries
    training: TrainingService
    iterations: IterationService
    performance: PerformanceService
    models: ModelCache
    exports: ExportService
    transfer: ProjectTransfer
    datasets: DatasetService
    prediction: PredictionService
    stored_predictions: StoredPredictions
    suggestions: SuggestionService
    ingest: IngestService
    orphans: OrphanSweeper
    links: LinkSigner
    url_policy: UrlPolicy

    @classmethod
    def build(cls, settings: Settings, storage: Storage | None = None) -> Services:
        """Every service, over `storage` (by default the account `settings` name)."""
        storage = storage or Storage.from_settings(settings)
        models = ModelCache(
            storage,
            max_bytes=settings.model_cache_mb * 1024 * 1024,
            name_ttl_seconds=settings.publish_name_ttl_seconds,
            threads=settings.onnx_threads,
        )
        projects = ProjectService(storage)
        tags = TagService(storage)
        images = ImageService(storage)
        queries = ImageQueries(storage)
        iterations = IterationService(storage, models)
        suggestions = SuggestionService(storage, models)
        return cls(
            settings=settings,
            storage=storage,
            projects=projects,
            tags=tags,
            images=images,
            regions=RegionService(storage, suggestions),
            queries=queries,
            training=TrainingService(storage, settings.training_seed),
            iterations=iterations,
            performance=PerformanceService(iterations, queries),
            models=models,
            exports=ExportService(storage),
            transfer=ProjectTransfer(storage, ImportTokens(settings.training_key)),
            datasets=DatasetService(storage),
            prediction=PredictionService(storage, models),
            stored_predictions=StoredPredictions(
                storage, images, timedelta(days=settings.prediction_retention_days)
            ),
            suggestions=suggestions,
            ingest=IngestService(storage, projects, tags, images),
            orphans=OrphanSweeper(storage, tags),
            links=LinkSigner(settings.training_key, settings.image_link_ttl_seconds),
            url_policy=UrlPolicy(
                timeout_seconds=settings.url_timeout_seconds,
                max_redirects=settings.url_max_redirects,
                allowed_networks=tuple(settings.url_allowlist),
            ),
        )


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_project(
    services: ServicesDep, project_id: Annotated[str, Path(alias="projectId")]
) -> Project:
    return services.projects.get(parse_id(project_id, "projectId"))


ProjectDep = Annotated[Project, Depends(get_project)]


def base_url(request: Request) -> str:
    """Where signed links point: the configured public URL, the function app's own host name,
    else the address this server was reached at (its socket, not the client's Host header)."""
    settings = get_services(request).settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + "/"
    if settings.website_hostname:
        return f"https://{settings.website_hostname}/"
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in str(host) else host
    return f"{request.url.scheme}://{host}:{port}/"
