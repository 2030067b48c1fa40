#!/usr/bin/env python3
"""Classify an image file with the exported TensorFlow SavedModel: python predict.py photo.jpg

Needs: pip install tensorflow pillow numpy. The input is NHWC: (1, S, S, 3).
"""

from __future__ import annotations

import sys

import tensorflow as tf
from preprocess import HERE, load_input, load_labels, load_settings, print_predictions


def main(image_path: str) -> None:
    settings = load_settings()
    model = tf.saved_model.load(str(HERE / settings["model"]["file"]))
    serve = model.signatures["serving_default"]
    batch = load_input(image_path, settings)
    outputs = serve(**{settings["input"]["name"]: tf.constant(batch)})
    probabilities = outputs[settings["output"]["name"]].numpy()
    print_predictions(probabilities[0], load_labels())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py IMAGE_FILE")
    main(sys.argv[1])
