#!/usr/bin/env python3
"""A prediction server for the exported model, answering like Custom Vision's exported containers.

    python app.py --port 8080        (the Docker image runs: python app.py --port 80)

POST /image  the image bytes (application/octet-stream, or multipart/form-data with one file)
POST /url    {"url": "https://..."}: the server downloads the image (http/https only, a timeout,
             a size cap, at most MAX_REDIRECTS redirects)
GET  /       "Healthy"
Both POSTs answer {"id", "project", "iteration", "created", "predictions": [{"probability",
"tagId", "tagName", "tagType"}]}, most probable first (a detector's predictions also have a
"boundingBox": {"left", "top", "width", "height"}, fractions of the image, decoded by
postprocess.py as the service's detect endpoints decode them); errors are {"code", "message"}
with 400. Standard library HTTP plus onnxruntime, Pillow and numpy.
"""

from __future__ import annotations

import argparse
import datetime
import email.parser
import email.policy
import io
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from PIL import Image
from preprocess import HERE, to_input

MAX_IMAGE_BYTES = 6 * 1024 * 1024
MAX_BODY_BYTES = MAX_IMAGE_BYTES + 64 * 1024  # room for a multipart envelope
URL_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 3
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Model:
    """The exported model.onnx with its labels and preprocessing; thread-safe."""

    def __init__(self, folder: Path = HERE) -> None:
        self.settings: dict[str, Any] = json.loads((folder / "preprocessing.json").read_text())
        self.labels: list[dict[str, str]] = json.loads((folder / "labels.json").read_text())
        self.project = str(self.settings.get("projectId") or "")
        self.iteration = str(self.settings.get("iterationId") or "")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # concurrent requests use the other cores
        self.session = onnxruntime.InferenceSession(
            str(folder / self.settings["model"]["file"]),
            options,
            providers=["CPUExecutionProvider"],
        )
        self.names = [output.name for output in self.session.get_outputs()]
        self.detects = self.settings.get("task") == "detection"

    def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the model, by name, for a preprocessed (N, 3, S, S) float32 batch."""
        results = self.session.run(self.names, {self.settings["input"]["name"]: batch})
        return {name: np.asarray(r) for name, r in zip(self.names, results, strict=True)}

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, T) probabilities of a preprocessed (N, 3, S, S) float32 batch (a classifier)."""
        return self.outputs(batch)[self.settings["output"]["name"]]

    def _tag(self, index: int, probability: float) -> dict[str, Any]:
        label = self.labels[index]
        return {
            "probability": probability,
            "tagId": label["id"],
            "tagName": label["name"],
            "tagType": label.get("type", "Regular"),
        }

    def predictions(self, batch: np.ndarray) -> list[dict[str, Any]]:
        """The answer's predictions for a batch of one image, most probable first."""
        outputs = self.outputs(batch)
        if not self.detects:
            scores = outputs[self.settings["output"]["name"]][0]
            order = sorted(range(len(self.labels)), key=lambda i: -float(scores[i]))
            return [self._tag(i, float(scores[i])) for i in order]
        from postprocess import decode  # type: ignore[import-not-found]  # a detector's export

        post = self.settings["postprocess"]
        found = decode(
            outputs[self.settings["boxes"]["name"]][0],
            outputs[self.settings["output"]["name"]][0],
            post["scoreThreshold"],
            post["nmsIou"],
            int(post["maxDetections"]),
        )
        box_keys = ("left", "top", "width", "height")
        return [
            {
                **self._tag(int(tag), float(score)),
                "boundingBox": dict(zip(box_keys, (float(v) for v in box), strict=True)),
            }
            for box, score, tag in zip(found.boxes, found.scores, found.classes, strict=True)
        ]

    def predict_image(self, data: bytes) -> dict[str, Any]:
        try:
            with Image.open(io.BytesIO(data)) as image:
                batch = to_input(image, self.settings)
        except Image.DecompressionBombError as error:
            raise RequestError("BadRequestImageSizeBytes", str(error)) from error
        except (OSError, ValueError) as error:
            raise RequestError("BadRequestImageFormat", "the bytes are not an image") from error
        predictions = self.predictions(batch)
        return {
            "id": str(uuid.uuid4()),
            "project": self.project,
            "iteration": self.iteration,
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "predictions": predictions,
        }


class _LimitedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self, req: Any, fp: Any, code: Any, msg: Any, headers: Any, newurl: str
    ) -> Any:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise RequestError("BadRequestImageUrl", "the URL redirects outside http/https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str) -> bytes:
    """The image at `url`: http/https only, a timeout, at most MAX_IMAGE_BYTES."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise RequestError("BadRequestImageUrl", "the URL must be http or https")
    opener = urllib.request.build_opener(_LimitedRedirects)
    try:
        with opener.open(url, timeout=URL_TIMEOUT_SECONDS) as response:
            data: bytes = response.read(MAX_IMAGE_BYTES + 1)
    except RequestError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise RequestError(
            "BadRequestImageUrl", f"could not download the image: {error}"
        ) from error
    if len(data) > MAX_IMAGE_BYTES:
        raise RequestError("BadRequestImageSizeBytes", "the image is larger than 6 MB")
    return data


def image_from_body(content_type: str, body: bytes) -> bytes:
    """The image bytes of a POST /image body: raw bytes, or the first file of a multipart form."""
    if not content_type.lower().startswith("multipart/"):
        return body
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope)
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            return payload
    raise RequestError("BadRequestImageFormat", "the multipart body holds no file")


class Handler(BaseHTTPRequestHandler):
    model: Model  # set by serve()
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request before its connection is closed

    def _answer(self, status: int, body: dict[str, Any] | str) -> None:
        if isinstance(body, str):
            data, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise RequestError("BadRequestImageSizeBytes", "the image is larger than 6 MB")
        return self.rfile.read(length)

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path.rstrip("/") == "":
            self._answer(200, "Healthy")
        else:
            self._answer(404, {"code": "NotFound", "message": "no such route"})

    def do_POST(self) -> None:
        route = urllib.parse.urlsplit(self.path).path.rstrip("/").lower()
        try:
            if route == "/image":
                body = self._body()
                image = image_from_body(self.headers.get("Content-Type", ""), body)
                self._answer(200, self.model.predict_image(image))
            elif route == "/url":
                try:
                    url = json.loads(self._body())["url"]
                except (ValueError, KeyError, TypeError) as error:
                    raise RequestError("BadRequestImageUrl", 'send {"url": "..."}') from error
                self._answer(200, self.model.predict_image(download(str(url))))
            else:
                self._body()
                self._answer(404, {"code": "NotFound", "message": "POST /image or /url"})
        except RequestError as error:
            self._answer(400, {"code": error.code, "message": str(error)})

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise for a prediction server


def serve(port: int, host: str = "0.0.0.0", ready: threading.Event | None = None) -> None:
    Handler.model = Model()
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    if ready is not None:
        ready.set()
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--host", default="0.0.0.0")
    arguments = parser.parse_args()
    serve(arguments.port, arguments.host)
