#!/usr/bin/env python3
"""Classify an image file with the exported OpenVINO model: python predict.py photo.jpg

Needs: pip install openvino pillow numpy
"""

from __future__ import annotations

import sys

import openvino
from preprocess import HERE, load_input, load_labels, load_settings, print_predictions


def main(image_path: str) -> None:
    settings = load_settings()
    # float32 as exported: on CPUs with bfloat16 units OpenVINO would otherwise compute in bf16
    # (about 3 significant digits).
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    compiled = openvino.Core().compile_model(str(HERE / settings["model"]["file"]), "CPU", config)
    batch = load_input(image_path, settings)
    probabilities = compiled({settings["input"]["name"]: batch})[compiled.outputs[0]]
    print_predictions(probabilities[0], load_labels())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py IMAGE_FILE")
    main(sys.argv[1])
