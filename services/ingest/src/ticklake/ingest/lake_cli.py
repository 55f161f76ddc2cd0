"""``ticklake-lake``: maintenance of the lake's Delta tables, while ingest runs.

    ticklake-lake status                         # versions, days, files, rows per dataset
    ticklake-lake compact [--dataset ticks] [--date 2025-01-02 | --finished]
    ticklake-lake expire                         # retention: TICKLAKE_*_RETENTION_DAYS
    ticklake-lake vacuum [--retain-hours 168] [--full]
    ticklake-lake maintain                       # compact finished days, expire, vacuum
    ticklake-lake adopt [--topic market.ticks]   # a lake from before tables: add its files

The lake and the policies come from ``TICKLAKE_*`` variables
(:class:`~ticklake.ingest.settings.LakeMaintenanceSettings`). Each command prints one JSON
document with what it did; the exit status is 0 when it did all of it, 1 on a refused or
failed step (another maintenance commit first, the table unreachable), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from typing import Any

from deltalake.exceptions import DeltaError
from pydantic import ValidationError

from ticklake.core.lake_fs import Lake, open_lake
from ticklake.core.lake_layout import TICKS_DATASET
from ticklake.core.lake_table import has_table
from ticklake.ingest import lake_maintenance as maintenance
from ticklake.ingest.logs import configure_logging
from ticklake.ingest.settings import LakeMaintenanceSettings

log = logging.getLogger("ticklake.lake")


def _datasets(choice: str) -> list[str]:
    return list(maintenance.DATASETS) if choice == "all" else [choice]


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def status(lake: Lake) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dataset in maintenance.DATASETS:
        try:
            table = maintenance.open_table(lake, dataset)
        except maintenance.MaintenanceError as e:
            out[dataset] = {"table": None, "why": str(e)}
            continue
        days = maintenance.day_files(table)
        listed = maintenance.folder_files(lake, dataset)
        in_table = {f.path for files in days.values() for f in files}
        out[dataset] = {
            "version": table.version(),
            "days": {
                d: {"files": len(f), "rows": sum(x.rows for x in f)}
                for d, f in sorted(days.items())
            },
            # on disk, not in the newest snapshot: removed and not yet vacuumed, an
            # interrupted flush or compaction, or a file that is not ours. Never read.
            "files_not_in_table": sorted(set(listed) - in_table),
        }
    return out


def _only_topic(lake: Lake) -> str:
    import pyarrow.fs as pafs

    from ticklake.ingest.sinks.lake import STATE_DIR

    selector = pafs.FileSelector(lake.path(STATE_DIR), allow_not_found=True)
    topics = sorted(i.base_name for i in lake.fs.get_file_info(selector) if not i.is_file)
    if len(topics) != 1:
        raise maintenance.MaintenanceError(
            f"give --topic: the lake has checkpoints of {len(topics)} topics {topics}"
        )
    return str(topics[0])


def compact(lake: Lake, settings: LakeMaintenanceSettings, datasets: list[str],
            days: list[str] | None, today: date) -> list[dict[str, Any]]:  # fmt: skip
    results = []
    for dataset in datasets:
        table = maintenance.open_table(lake, dataset)
        known = maintenance.day_files(table)
        if days is None:
            chosen = maintenance.finished_days(
                list(known), today, settings.lake_compact_settle_days
            )
        else:
            chosen = days
        for day in chosen:
            result = maintenance.compact_day(
                lake, dataset, day, target_rows=settings.lake_compact_target_rows
            )
            results.append(result.as_dict())
    return results


def expire(
    lake: Lake,
    settings: LakeMaintenanceSettings,
    today: date,
    datasets: tuple[str, ...] | list[str] = maintenance.DATASETS,
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for dataset in datasets:
        keep = (
            settings.ticks_retention_days
            if dataset == TICKS_DATASET
            else settings.bars_retention_days
        )
        if keep is not None:
            out[dataset] = maintenance.expire(lake, dataset, keep, today)
    return out


def vacuum(
    lake: Lake,
    settings: LakeMaintenanceSettings,
    retain_hours: int,
    full: bool,
    datasets: tuple[str, ...] | list[str] = maintenance.DATASETS,
) -> dict[str, int]:
    days = settings.lake_log_retention_days
    return {
        dataset: len(
            maintenance.vacuum(lake, dataset, retain_hours, full=full, log_retention_days=days)
        )
        for dataset in datasets
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ticklake-lake",
        description="Maintain the lake's Delta tables: compaction, retention, vacuum. The "
        "lake and the policies are TICKLAKE_* variables (docs/settings.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="versions, days, files and rows of each dataset's table")
    p_compact = sub.add_parser("compact", help="rewrite days into few large sorted files")
    p_compact.add_argument("--dataset", choices=[*maintenance.DATASETS, "all"], default="all")
    which = p_compact.add_mutually_exclusive_group()
    which.add_argument("--date", type=_day, action="append", help="a day (repeatable)")
    which.add_argument("--finished", action="store_true", help="every finished day (default)")
    sub.add_parser("expire", help="remove days past the retention from the tables")
    p_vacuum = sub.add_parser("vacuum", help="delete files the tables removed long enough ago")
    p_vacuum.add_argument("--retain-hours", type=int, default=None)
    p_vacuum.add_argument(
        "--full",
        action="store_true",
        help="also files no version ever added (only when every file of the folders went "
        "through the table: a lake from before tables would lose its old files)",
    )
    sub.add_parser("maintain", help="compact finished days, expire, vacuum (the CronJob)")
    p_adopt = sub.add_parser(
        "adopt", help="add the complete flushes of a lake written before tables to the tables"
    )
    p_adopt.add_argument(
        "--topic",
        help="the topic ingest reads (its checkpoints: _state/<topic>/); default: "
        "the only one there",
    )
    args = parser.parse_args(argv)

    try:
        settings = LakeMaintenanceSettings()
    except ValidationError as e:
        print(f"ticklake-lake: bad settings: {e}", file=sys.stderr)
        return 2
    configure_logging("WARNING")
    lake = open_lake(settings)
    today = maintenance.today_utc()
    retain = settings.lake_vacuum_retain_hours
    try:
        if args.command == "status":
            report: Any = status(lake)
        elif args.command == "compact":
            report = compact(lake, settings, _datasets(args.dataset), args.date, today)
        elif args.command == "expire":
            report = expire(lake, settings, today)
        elif args.command == "adopt":
            report = maintenance.adopt(lake, args.topic or _only_topic(lake))
        elif args.command == "vacuum":
            hours = retain if args.retain_hours is None else args.retain_hours
            report = vacuum(lake, settings, hours, args.full)
        else:
            present = [d for d in maintenance.DATASETS if has_table(lake, d)]
            report = {
                "compacted": compact(lake, settings, present, None, today),
                "expired": expire(lake, settings, today, present),
                "vacuumed": vacuum(lake, settings, retain, False, present),
            }
    except (maintenance.MaintenanceError, DeltaError, OSError) as e:
        print(f"ticklake-lake {args.command}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
