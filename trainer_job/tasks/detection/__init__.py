"""Object detection: an FCOS-style detector on an EfficientNet-Lite backbone (model.py), its
augmented dataset (data.py) and its training and evaluation (fit.py)."""
