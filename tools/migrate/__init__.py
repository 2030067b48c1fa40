"""Copy Custom Vision projects between two endpoints that speak its Training API (Azure's
Custom Vision, or another instance of this service) with the official SDK on both sides:
`python -m tools.migrate --help`. README, "Migrating from Custom Vision", walks through it."""
