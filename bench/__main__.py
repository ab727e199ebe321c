"""`python -m bench [--quick] [--only NAME ...] [--pg] [--json FILE]`: run the benchmarks and print the results table;
`python -m bench soak [--duration S] [--rate R] [--seed N]`: the soak under kills and Slack outages (bench/soak.py)."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import ack, approve, expiry, export, socket_reconnect, startup
from bench.core import Figure, Lab

BENCHES: dict[str, Callable[[Lab], list[Figure]]] = {
    "ack": ack.run,
    "approve": approve.run,
    "expiry": expiry.run,
    "export": export.run,
    "startup": startup.run,
    "socket": socket_reconnect.run,
}
WATCHDOG = {"quick": 180.0, "full": 900.0}  # seconds one benchmark may take before the run is ended


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test in seconds, not a measurement")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these ({', '.join(BENCHES)}); repeat or comma-separate",
    )
    parser.add_argument("--pg", action="store_true", help="run the bot on a fresh PostgreSQL database instead of SQLite")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workdir", type=Path, help="keep databases, logs and exports here (default: a temp dir, removed)")
    return parser


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        memory = ""
    return f"{cpu}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.1f} {unit}"


def table(figures: list[Figure]) -> str:
    header = ("bench", "figure", "jitbot", "baseline", "ratio", "target", "verdict", "baseline is")
    rows = [
        (
            f.bench,
            f.metric,
            _number(f.value, f.unit),
            _number(f.baseline, f.unit),
            f"{f.ratio:.2f}x",
            f.target,
            f.verdict,
            f.baseline_label + (f" ({f.note})" if f.note else ""),
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])


def _watchdog(seconds: float, lab: Lab) -> threading.Timer:
    def fire() -> None:
        print(f"\nbench: a benchmark ran longer than {seconds:.0f}s; stopping. Threads:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(all_threads=True)
        lab.emergency_stop()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["soak"]:
        from bench import soak  # a command of its own, with its own options

        return soak.main(argv[1:])
    args = _parser().parse_args(argv)
    selected = [name.strip() for value in args.only for name in value.split(",") if name.strip()] or list(BENCHES)
    unknown = [name for name in selected if name not in BENCHES]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    temporary = None if args.workdir else tempfile.TemporaryDirectory(prefix="jitbot-bench-")
    workdir = args.workdir or Path(temporary.name)  # type: ignore[union-attr]
    workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=workdir / "bench.log", level=logging.WARNING, force=True)  # the bot's logs, off the terminal
    started = time.monotonic()
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    lab = Lab(workdir=workdir, quick=args.quick, pg=args.pg)
    print(
        f"bench: {'quick' if args.quick else 'full'} run of {', '.join(selected)} on {'PostgreSQL' if args.pg else 'SQLite'}",
        file=sys.stderr,
    )
    try:
        for name in selected:
            print(f"[{name}]", file=sys.stderr, flush=True)
            began = time.monotonic()
            watchdog = _watchdog(WATCHDOG["quick" if args.quick else "full"], lab)
            try:
                figures.extend(BENCHES[name](lab))
            except Exception as error:
                failures[name] = "".join(traceback.format_exception(error))
                print(f"  ! {name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            finally:
                watchdog.cancel()
                timings[name] = time.monotonic() - began
                print(f"  = {name}: {timings[name]:.1f}s", file=sys.stderr, flush=True)
    finally:
        lab.close()
    total = time.monotonic() - started
    print()
    print(table(figures))
    print()
    misses = sum(f.verdict == "MISS" for f in figures)
    print(
        f"{len(figures)} figures, {sum(f.verdict == 'PASS' for f in figures)} PASS, {misses} MISS; "
        f"ratio = jitbot / baseline, both measured in this run."
    )
    print(f"machine: {machine()}")
    print(
        f"database: {'PostgreSQL' if args.pg else 'SQLite'}; total time {total:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in timings.items())})"
    )
    for name, trace in failures.items():
        print(f"\n{name} FAILED:\n{trace}", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "mode": "quick" if args.quick else "full",
                    "database": "postgresql" if args.pg else "sqlite",
                    "machine": machine(),
                    "total_seconds": total,
                    "bench_seconds": timings,
                    "figures": [f.as_json() for f in figures],
                    "failures": failures,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    if temporary is not None:
        temporary.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
