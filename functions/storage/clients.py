"""Service clients for one storage account, and creation of what must exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from functions.domain import names
from functions.settings import Settings
from functions.storage.blobs import BlobStore
from functions.storage.dataset_jobs import DatasetJobTable
from functions.storage.exports import ExportTable
from functions.storage.image_index import ImageTable
from functions.storage.iterations import IterationTable
from functions.storage.migrations import rekey_names
from functions.storage.predictions import PredictionTable
from functions.storage.queues import TrainingQueue
from functions.storage.suggestions import SuggestionTable
from functions.storage.tables import ProjectTable, TagTable

# When storage cannot be reached, fail within seconds (the API answers 503 with Retry-After)
# rather than after the SDKs' default of 10 retries with exponential back-off. A server that
# accepts but stalls is given up on after 30 s without a byte (tables default to 300 s per
# try); that bounds a wait between reads, not a whole transfer, so large blobs still stream.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.4,
    "connection_timeout": 5,
    "read_timeout": 30,
}


@dataclass(frozen=True)
class StorageClients:
    tables: TableServiceClient
    blobs: BlobServiceClient
    queues: QueueServiceClient

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageClients:
        if settings.storage_connection_string:
            conn = settings.storage_connection_string
            return cls(
                TableServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
                BlobServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
                QueueServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
            )
        from azure.identity import DefaultAzureCredential

        account = settings.storage_account_name
        credential = DefaultAzureCredential()
        endpoint = "https://{}.{}.core.windows.net"
        return cls(
            TableServiceClient(
                endpoint.format(account, "table"), credential=credential, **CLIENT_OPTIONS
            ),
            BlobServiceClient(
                endpoint.format(account, "blob"), credential=credential, **CLIENT_OPTIONS
            ),
            QueueServiceClient(
                endpoint.format(account, "queue"), credential=credential, **CLIENT_OPTIONS
            ),
        )

    def ensure_resources(self) -> None:
        """Create the tables, containers and queues that are missing."""
        for table in names.TABLES:
            self.tables.create_table_if_not_exists(table)
        for container in names.CONTAINERS:
            try:
                self.blobs.create_container(container)
            except ResourceExistsError:
                pass
        for queue in names.QUEUES:
            try:
                self.queues.create_queue(queue)
            except ResourceExistsError:
                pass


class Storage:
    """The repositories the services use, over one storage account (clients are thread-safe)."""

    def __init__(self, clients: StorageClients) -> None:
        self.clients = clients
        self.projects = ProjectTable(clients.tables.get_table_client(names.TABLE_PROJECTS))
        self.tags = TagTable(clients.tables.get_table_client(names.TABLE_TAGS))
        self.images = ImageTable(clients.tables.get_table_client(names.TABLE_IMAGES))
        self.iterations = IterationTable(clients.tables.get_table_client(names.TABLE_ITERATIONS))
        self.exports = ExportTable(self.iterations.table)
        self.dataset_jobs = DatasetJobTable(self.iterations.table)
        self.predictions = PredictionTable(clients.tables.get_table_client(names.TABLE_PREDICTIONS))
        self.suggestions = SuggestionTable(clients.tables.get_table_client(names.TABLE_SUGGESTIONS))
        self.blobs = BlobStore(clients.blobs)
        self.training_queue = TrainingQueue(
            clients.queues.get_queue_client(names.QUEUE_TRAINING),
            clients.queues.get_queue_client(names.QUEUE_TRAINING_POISON),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(StorageClients.from_settings(settings))

    def ensure_resources(self) -> None:
        """Create the tables, containers and queues that are missing."""
        self.clients.ensure_resources()

    def prepare(self) -> None:
        """Create what is missing and rewrite rows stored by earlier versions."""
        self.clients.ensure_resources()
        rekey_names(self.projects.table, self.tags.table, self.iterations.table)
