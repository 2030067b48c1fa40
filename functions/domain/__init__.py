"""Plain-Python domain shared by the function app and the trainer: models, errors, names."""
