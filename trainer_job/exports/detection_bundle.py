"""What a detector's export adds to the zip: postprocess.py (the service's own decoding), the
detections.py sample helper, and the words of preprocessing.json and MODEL_CARD.md about the two
outputs and how to decode them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions.domain import detection_decode
from trainer_job.exports.detection_check import (
    COMPARED_PROBABILITY,
    MATCH_IOU,
    MAX_DETECTIONS,
    NMS_IOU,
    SCORE_FLOOR,
)
from trainer_job.exports.inputs import ExportInputs

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The service's decoding module itself (numpy only), shipped as the bundle's postprocess.py: one
# implementation for the detect endpoints, the trainer's evaluation and every export.
POSTPROCESS_SOURCE = Path(detection_decode.__file__)
POSTPROCESS_SCRIPT = "postprocess.py"
DETECTIONS_SCRIPT = "detections.py"
SCORES_MEANING = (
    "per-tag probability of an object of that tag at each location: sqrt(sigmoid(class logit) "
    "x sigmoid(centerness logit)), computed in the graph"
)
BOXES_MEANING = "x0, y0, x1, y1: the box's corners as fractions of the image's width and height"


def script_files() -> dict[str, str]:
    return {
        POSTPROCESS_SCRIPT: POSTPROCESS_SOURCE.read_text("utf-8"),
        DETECTIONS_SCRIPT: (TEMPLATES / DETECTIONS_SCRIPT).read_text("utf-8"),
    }


def settings(inputs: ExportInputs, boxes_name: str, scores_name: str) -> dict[str, Any]:
    """preprocessing.json's keys about a detector's outputs and their decoding."""
    tags = len(inputs.labels)
    return {
        "output": {
            "name": scores_name,
            "shape": ["N", "A", tags],
            "activation": SCORES_MEANING,
            "labels": "labels.txt (one tag name per line, in the order of the last axis)",
        },
        "boxes": {"name": boxes_name, "shape": ["N", "A", 4], "format": BOXES_MEANING},
        "postprocess": {
            "script": POSTPROCESS_SCRIPT,
            "function": "decode",
            "scoreThreshold": SCORE_FLOOR,
            "nmsIou": NMS_IOU,
            "maxDetections": MAX_DETECTIONS,
            "description": (
                "keep the (location, tag) pairs scoring at least scoreThreshold, suppress per "
                "tag the boxes overlapping a better one of the same tag at IoU above nmsIou, "
                "answer the best maxDetections as left, top, width, height fractions"
            ),
        },
    }


def card_lines(inputs: ExportInputs, boxes_name: str, scores_name: str) -> list[str]:
    """MODEL_CARD.md's section on a detector's outputs, decoding and use."""
    return [
        f"Output `{boxes_name}` (N, A, 4): for each of the A locations the model looks at, "
        f"{BOXES_MEANING}. Output `{scores_name}` (N, A, {len(inputs.labels)}): the "
        f"{SCORES_MEANING}; the tags are in the order of `labels.txt`.",
        "",
        f"Decode them with `{POSTPROCESS_SCRIPT}` (numpy only; the very module the service "
        f"decodes with): `decode(boxes[0], scores[0], {SCORE_FLOOR:g}, {NMS_IOU:g}, "
        f"{MAX_DETECTIONS})` keeps the (location, tag) pairs scoring at least {SCORE_FLOOR:g}, "
        f"suppresses per tag the boxes that overlap a better one of the same tag at IoU above "
        f"{NMS_IOU:g} (non-maximum suppression) and answers the best {MAX_DETECTIONS} as left, "
        "top, width, height fractions, most probable first. Those are the numbers the "
        "service's detect endpoints use: they answer every box down to "
        f"{100 * SCORE_FLOOR:g} % for the client to threshold (Custom Vision's portal shows "
        "those at 50 % or more by default).",
        "",
        "## Use",
        "",
        "`pip install -r requirements.txt`, then `python predict.py photo.jpg` prints one line "
        "per box, most probable first: `tag  probability  left top width height` (fractions "
        "of the photo). `--threshold 0.5` keeps the confident ones only; `--draw boxes.jpg` "
        "also draws them on the photo (Pillow).",
        "",
        "## How this export was checked",
        "",
        "Before it was stored, this format's model and the service's model.onnx (onnxruntime) "
        "ran on the same check images (the iteration's own training photos) and both answers "
        "were decoded as above. The boxes compared are the service model's at probability "
        f"{COMPARED_PROBABILITY:g} or more, and each image's best; each must be found by this "
        f"format with the same tag at IoU {MATCH_IOU:g} or more, and this format may answer no "
        f"box at {COMPARED_PROBABILITY:g} or more that the service does not. The export "
        "fails otherwise. The figures measured are in the notes below.",
    ]
