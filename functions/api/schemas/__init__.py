"""Wire models: JSON exactly as Custom Vision sends and accepts it (camelCase)."""
