"""The domains we serve, with Custom Vision's published ids: classification and object detection.

Classification: compact domains run EfficientNet-Lite0 at 224 px, the others EfficientNet-Lite2
at 260 px with EfficientNet-Lite0 beside it on the same input, its features read only when the
project's own cross-validation finds they help (a stacked backbone name, "lite2+lite0").
Object detection: the same backbones at 320 px (compact) and 416 px (the others).
A project's domain decides its kind for good: Custom Vision refuses a change between the kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.domain.exports import EXPORT_FLAVORS

# Every iteration of every domain exports (Custom Vision exports compact domains only).
EXPORT_PLATFORMS = tuple(EXPORT_FLAVORS)

LITE0 = "efficientnet-lite0"
LITE2 = "efficientnet-lite2"
LITE2_LITE0 = f"{LITE2}+{LITE0}"  # both on the same input, the features side by side
# float32 ONNX megabytes of a Regular model on each backbone (model.onnx as `bench/export.py
# --backbone lite0|lite2` measures it: 13.5 and 19.2 MB; a stacked one is about the sum, 32.7 MB)
_MEGABYTES = {LITE0: 14, LITE2: 19}

_SAME_BACKBONE = (
    " We use the same general-purpose ImageNet backbone as the General domain; there is no"
    " specialised model for this domain."
)


CLASSIFICATION = "Classification"
OBJECT_DETECTION = "ObjectDetection"


@dataclass(frozen=True)
class Domain:
    id: str
    name: str
    description: str
    backbone: str
    image_size: int
    type: str = CLASSIFICATION

    @property
    def detection(self) -> bool:
        return self.type == OBJECT_DETECTION

    @property
    def model_megabytes(self) -> int:
        """The size of a Regular model reading every backbone of the domain, float32 ONNX."""
        return sum(_MEGABYTES[part] for part in self.backbone.split("+"))

    @property
    def exportable_platforms(self) -> list[str]:
        return list(EXPORT_PLATFORMS)  # every domain, detectors too (Custom Vision: compact only)


def _general(domain_id: str, name: str, note: str = "") -> Domain:
    return Domain(
        domain_id,
        name,
        "EfficientNet-Lite2 (ImageNet) at 260 px, with EfficientNet-Lite0 features beside it"
        " when the project's cross-validation finds they help; fine for most image"
        " classification tasks." + note,
        LITE2_LITE0,
        260,
    )


def _compact(domain_id: str, name: str, note: str = "") -> Domain:
    return Domain(
        domain_id,
        name,
        "EfficientNet-Lite0 (ImageNet) at 224 px: small and fast." + note,
        LITE0,
        224,
    )


GENERAL_DOMAIN_ID = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"

DOMAINS: tuple[Domain, ...] = (
    _general(GENERAL_DOMAIN_ID, "General"),
    _general("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]"),
    _general("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]"),
    _general("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", _SAME_BACKBONE),
    _general("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", _SAME_BACKBONE),
    _general("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", _SAME_BACKBONE),
    _compact("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)"),
    _compact("a1db07ca-a19a-4830-bae8-e004a42dc863", "General (compact) [S1]"),
    _compact("8882951b-82cd-4c32-970b-d5f8cb8bf6d7", "Food (compact)", _SAME_BACKBONE),
    _compact("b5cfd229-2ac7-4b2b-8d0a-2b0661344894", "Landmarks (compact)", _SAME_BACKBONE),
    _compact("6b4faeda-8396-481b-9f8b-177b9fa3097f", "Retail (compact)", _SAME_BACKBONE),
)


def _detector(domain_id: str, name: str, compact: bool, note: str = "") -> Domain:
    backbone, size = (LITE0, 320) if compact else (LITE2, 416)
    label = "EfficientNet-Lite0" if compact else "EfficientNet-Lite2"
    return Domain(
        domain_id,
        name,
        f"Object detection on {label} (ImageNet) at {size} px"
        + (": small and fast." if compact else ".")
        + note,
        backbone,
        size,
        OBJECT_DETECTION,
    )


_SAME_DETECTOR = (
    " We use the same general-purpose detector as the General domain; there is no specialised"
    " model for this domain."
)
GENERAL_DETECTION_DOMAIN_ID = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"

DETECTION_DOMAINS: tuple[Domain, ...] = (
    _detector(GENERAL_DETECTION_DOMAIN_ID, "General", compact=False),
    _detector("9c616dff-2e7d-ea11-af59-1866da359ce6", "General [A1]", compact=False),
    _detector("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", False, _SAME_DETECTOR),
    _detector("3780a898-81c3-4516-81ae-3a139614e1f3", "Products on shelves", False, _SAME_DETECTOR),
    _detector("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", compact=True),
    _detector("7ec2ac80-887b-48a6-8df9-8b1357765430", "General (compact) [S1]", compact=True),
)

_BY_ID = {d.id: d for d in (*DOMAINS, *DETECTION_DOMAINS)}


def find_domain(domain_id: str) -> Domain | None:
    return _BY_ID.get(domain_id.lower())


def is_detection(domain_id: str) -> bool:
    domain = find_domain(domain_id)
    return domain is not None and domain.detection
