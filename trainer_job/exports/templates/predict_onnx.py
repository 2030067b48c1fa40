#!/usr/bin/env python3
"""Run the exported ONNX model on an image file: python predict.py photo.jpg

Needs: pip install onnxruntime pillow numpy. A classifier prints every tag's probability; a
detector prints its boxes (python predict.py --help for its options).
"""

from __future__ import annotations

import onnxruntime
from preprocess import HERE, load_input, load_settings, parse_arguments, report


def main() -> None:
    settings = load_settings()
    arguments = parse_arguments(settings, __doc__ or "")
    session = onnxruntime.InferenceSession(
        str(HERE / settings["model"]["file"]), providers=["CPUExecutionProvider"]
    )
    batch = load_input(arguments.image, settings)
    names = [output.name for output in session.get_outputs()]
    results = session.run(names, {settings["input"]["name"]: batch})
    report(dict(zip(names, results, strict=True)), settings, arguments)


if __name__ == "__main__":
    main()
