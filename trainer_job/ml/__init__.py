"""The model: frozen EfficientNet-Lite features, a linear head, cross-validation, ONNX export."""
