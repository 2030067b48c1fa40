"""`python -m tools.migrate`: copy one or every project from a Custom Vision endpoint into
another (this service's, usually), resumably; optionally train and publish the copies."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from tools.migrate.connect import downloader, endpoint, selected
from tools.migrate.copier import MigrationError, ProjectCopier
from tools.migrate.journal import Journal
from tools.migrate.pacing import Pacer
from tools.migrate.publishing import train_and_publish
from tools.migrate.summary import counts, table

DEFAULT_STATE = Path("cv-migration.json")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.migrate",
        description="Copy Custom Vision projects (settings, tags, images with their tags, "
        "regions and metadata) from one Training endpoint to another. A second run copies "
        "only what is missing.",
    )
    parser.add_argument(
        "--source-endpoint", required=True, help="e.g. https://<name>.cognitiveservices.azure.com"
    )
    parser.add_argument(
        "--source-key",
        default=os.environ.get("CV_SOURCE_TRAINING_KEY"),
        help="the source's training key (default: $CV_SOURCE_TRAINING_KEY)",
    )
    parser.add_argument("--target-endpoint", required=True, help="e.g. http://localhost:7071")
    parser.add_argument(
        "--target-key",
        default=os.environ.get("CV_TARGET_TRAINING_KEY"),
        help="the target's training key (default: $CV_TARGET_TRAINING_KEY)",
    )
    parser.add_argument(
        "--project",
        action="append",
        default=[],
        help="a source project's name or id (repeatable; default: every project)",
    )
    parser.add_argument("--train", action="store_true", help="train each copy on the target")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="train each copy whose source publishes an iteration, and publish it under the "
        "same name",
    )
    parser.add_argument(
        "--prediction-resource",
        help="the prediction resource id to publish to (default: the source's)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="most API calls a second to each endpoint (default 10, Custom Vision's standard tier)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE,
        help=f"what has been copied, for the next run (default ./{DEFAULT_STATE})",
    )
    parser.add_argument(
        "--train-timeout", type=float, default=7200.0, help="seconds to wait for each training"
    )
    args = parser.parse_args(argv)
    if not args.source_key or not args.target_key:
        parser.error("give --source-key and --target-key (or set CV_SOURCE/TARGET_TRAINING_KEY)")
    if args.rate < 0:
        parser.error("--rate must be 0 (no limit) or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    source = endpoint(args.source_endpoint, args.source_key, args.rate)
    target = endpoint(args.target_endpoint, args.target_key, args.rate)
    journal = Journal(args.state, args.source_endpoint, args.target_endpoint)
    all_equal = True
    with httpx.Client(timeout=120, follow_redirects=True) as http:
        copier = ProjectCopier(source, target, journal, downloader(http, Pacer(0)))
        for project in selected(source, args.project):
            try:
                report = copier.copy(project)
            except MigrationError as error:
                print(f"{project.name}: not copied: {error}", file=sys.stderr)
                all_equal = False
                continue
            rows = counts(source, target, report)
            print(table(report, rows))
            all_equal &= not report.failed and all(r.equal for r in rows)
            if args.train or args.publish:
                try:
                    outcome = train_and_publish(
                        source,
                        target,
                        report.source_id,
                        report.target_id,
                        args.train,
                        args.publish,
                        args.prediction_resource,
                        args.train_timeout,
                    )
                except MigrationError as error:
                    outcome, all_equal = f"not trained: {error}", False
                print(f"  {outcome}")
    throttled = source.pacer.throttled + target.pacer.throttled
    print(f"{source.pacer.calls + target.pacer.calls} API calls, {throttled} answered 429/503")
    return 0 if all_equal else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to finish", file=sys.stderr)
        sys.exit(130)
