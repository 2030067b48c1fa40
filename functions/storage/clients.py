"""Service clients for one storage account, and creation of what must exist."""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from functions.domain import names
from functions.settings import Settings
from functions.storage.blobs import BlobStore
from functions.storage.exports import ExportTable
from functions.storage.image_index import ImageTable
from functions.storage.iterations import IterationTable
from functions.storage.migrations import rekey_names
from functions.storage.predictions import PredictionTable
from functions.storage.suggestions import SuggestionTable
from functions.storage.tables import ProjectTable, TagTable


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
                TableServiceClient.from_connection_string(conn),
                BlobServiceClient.from_connection_string(conn),
                QueueServiceClient.from_connection_string(conn),
            )
        from azure.identity import DefaultAzureCredential

        account = settings.storage_account_name
        credential = DefaultAzureCredential()
        return cls(
            TableServiceClient(f"https://{account}.table.core.windows.net", credential=credential),
            BlobServiceClient(f"https://{account}.blob.core.windows.net", credential=credential),
            QueueServiceClient(f"https://{account}.queue.core.windows.net", credential=credential),
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
        self.predictions = PredictionTable(clients.tables.get_table_client(names.TABLE_PREDICTIONS))
        self.suggestions = SuggestionTable(clients.tables.get_table_client(names.TABLE_SUGGESTIONS))
        self.blobs = BlobStore(clients.blobs)
        self.training_queue = clients.queues.get_queue_client(names.QUEUE_TRAINING)

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(StorageClients.from_settings(settings))

    def prepare(self) -> None:
        """Create what is missing and rewrite rows stored by earlier versions."""
        self.clients.ensure_resources()
        rekey_names(self.projects.table, self.tags.table, self.iterations.table)
