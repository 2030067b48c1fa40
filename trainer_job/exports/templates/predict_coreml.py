#!/usr/bin/env python3
"""Classify an image file with the exported Core ML model (macOS): python predict.py photo.jpg

Needs macOS and: pip install coremltools pillow numpy. The model is a classifier: it returns
the most probable tag ("classLabel") and every tag's probability ("classLabel_probs").
"""

from __future__ import annotations

import sys

import coremltools
from preprocess import HERE, load_input, load_labels, load_settings, print_predictions


def main(image_path: str) -> None:
    settings = load_settings()
    model = coremltools.models.MLModel(str(HERE / settings["model"]["file"]))
    batch = load_input(image_path, settings)
    result = model.predict({settings["input"]["name"]: batch})
    labels = load_labels()
    scores = result[settings["output"]["name"]]
    print_predictions([scores[name] for name in labels], labels)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py IMAGE_FILE")
    main(sys.argv[1])
