"""Azure Storage through the official SDKs: tables, blobs and queues, and their mappers."""
