#!/usr/bin/env python3
"""Run the exported TensorFlow SavedModel on an image file: python predict.py photo.jpg

Needs: pip install tensorflow pillow numpy. The input is NHWC: (1, S, S, 3). A classifier prints
every tag's probability; a detector prints its boxes (python predict.py --help for its options).
"""

from __future__ import annotations

import tensorflow as tf
from preprocess import HERE, load_input, load_settings, parse_arguments, report


def main() -> None:
    settings = load_settings()
    arguments = parse_arguments(settings, __doc__ or "")
    model = tf.saved_model.load(str(HERE / settings["model"]["file"]))
    serve = model.signatures["serving_default"]
    batch = load_input(arguments.image, settings)
    outputs = serve(**{settings["input"]["name"]: tf.constant(batch)})
    report({name: value.numpy() for name, value in outputs.items()}, settings, arguments)


if __name__ == "__main__":
    main()
