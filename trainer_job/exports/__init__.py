"""Exports of a trained iteration to other formats and runtimes, as Custom Vision offers them.

Pure functions over an iteration's artifacts: no storage, no web. `build_export` makes the zip;
`run_export` loads one with its format's own runtime (for tests and bench/export.py).
"""

from trainer_job.exports.inputs import ExportError, ExportInputs
from trainer_job.exports.platforms import FLAVORS, build_export, load_export, run_export

__all__ = ["FLAVORS", "ExportError", "ExportInputs", "build_export", "load_export", "run_export"]
