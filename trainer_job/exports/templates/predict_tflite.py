#!/usr/bin/env python3
"""Run the exported TensorFlow Lite model on an image file: python predict.py photo.jpg

Needs: pip install ai-edge-litert pillow numpy (or tensorflow, with tf.lite.Interpreter).
The model's input is NHWC: (1, S, S, 3), as preprocessing.json says. A classifier prints every
tag's probability; a detector prints its boxes (python predict.py --help for its options).
"""

from __future__ import annotations

from ai_edge_litert.interpreter import Interpreter
from preprocess import HERE, load_input, load_settings, parse_arguments, report


def main() -> None:
    settings = load_settings()
    arguments = parse_arguments(settings, __doc__ or "")
    interpreter = Interpreter(model_path=str(HERE / settings["model"]["file"]))
    interpreter.allocate_tensors()
    batch = load_input(arguments.image, settings)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    # preprocessing.json names the outputs as the model does (Identity, Identity_1, ...)
    details = interpreter.get_output_details()
    report({d["name"]: interpreter.get_tensor(d["index"]) for d in details}, settings, arguments)


if __name__ == "__main__":
    main()
