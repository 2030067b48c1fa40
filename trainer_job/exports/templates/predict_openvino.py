#!/usr/bin/env python3
"""Run the exported OpenVINO model on an image file: python predict.py photo.jpg

Needs: pip install openvino pillow numpy. A classifier prints every tag's probability; a
detector prints its boxes (python predict.py --help for its options).
"""

from __future__ import annotations

import openvino
from preprocess import HERE, load_input, load_settings, parse_arguments, report


def main() -> None:
    settings = load_settings()
    arguments = parse_arguments(settings, __doc__ or "")
    # float32 as exported: on CPUs with bfloat16 units OpenVINO would otherwise compute in bf16
    # (about 3 significant digits).
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    compiled = openvino.Core().compile_model(str(HERE / settings["model"]["file"]), "CPU", config)
    batch = load_input(arguments.image, settings)
    results = compiled({settings["input"]["name"]: batch})
    report({o.get_any_name(): results[o] for o in compiled.outputs}, settings, arguments)


if __name__ == "__main__":
    main()
