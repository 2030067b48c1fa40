#!/usr/bin/env python3
"""Classify an image file with the exported ONNX model: python predict.py photo.jpg

Needs: pip install onnxruntime pillow numpy
"""

from __future__ import annotations

import sys

import onnxruntime
from preprocess import HERE, load_input, load_labels, load_settings, print_predictions


def main(image_path: str) -> None:
    settings = load_settings()
    session = onnxruntime.InferenceSession(
        str(HERE / settings["model"]["file"]), providers=["CPUExecutionProvider"]
    )
    batch = load_input(image_path, settings)
    (probabilities,) = session.run(None, {settings["input"]["name"]: batch})
    print_predictions(probabilities[0], load_labels())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py IMAGE_FILE")
    main(sys.argv[1])
