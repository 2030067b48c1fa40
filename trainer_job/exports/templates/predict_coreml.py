#!/usr/bin/env python3
"""Run the exported Core ML model on an image file (macOS): python predict.py photo.jpg

Needs macOS and: pip install coremltools pillow numpy. A classifier model returns the most
probable tag ("classLabel") and every tag's probability ("classLabel_probs"), printed here; a
detector's returns its boxes and scores, decoded and printed (python predict.py --help).
"""

from __future__ import annotations

import coremltools
from preprocess import (
    HERE,
    detects,
    load_input,
    load_labels,
    load_settings,
    parse_arguments,
    print_predictions,
    report,
)


def main() -> None:
    settings = load_settings()
    arguments = parse_arguments(settings, __doc__ or "")
    model = coremltools.models.MLModel(str(HERE / settings["model"]["file"]))
    batch = load_input(arguments.image, settings)
    result = model.predict({settings["input"]["name"]: batch})
    if detects(settings):
        report(result, settings, arguments)
        return
    labels = load_labels()
    scores = result[settings["output"]["name"]]
    print_predictions([scores[name] for name in labels], labels)


if __name__ == "__main__":
    main()
