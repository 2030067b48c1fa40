#!/usr/bin/env python3
"""Classify an image file with the exported TensorFlow Lite model: python predict.py photo.jpg

Needs: pip install ai-edge-litert pillow numpy (or tensorflow, with tf.lite.Interpreter).
The model's input is NHWC: (1, S, S, 3), as preprocessing.json says.
"""

from __future__ import annotations

import sys

from ai_edge_litert.interpreter import Interpreter
from preprocess import HERE, load_input, load_labels, load_settings, print_predictions


def main(image_path: str) -> None:
    settings = load_settings()
    interpreter = Interpreter(model_path=str(HERE / settings["model"]["file"]))
    interpreter.allocate_tensors()
    batch = load_input(image_path, settings)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    print_predictions(probabilities[0], load_labels())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python predict.py IMAGE_FILE")
    main(sys.argv[1])
