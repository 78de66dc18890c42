"""Start-up and install: how long a new user waits for the CLI, and for the first ingest.

Run: python bench/startup.py [--runs 5] [--install 0]

Each command runs ``--runs`` times in a fresh process (``python -m ledger ...``); the table
gives the median wall time, the median CPU time of the process and its children, and both
as ratios to two floors measured in the same run, interleaved with the commands:
``python -c pass`` (the interpreter) and ``python -c "import sqlalchemy"`` (the one library
every database command needs). The commands:

- ``ledger --help``;
- ``ledger status BATCH --json`` on a ledger holding the sample batch;
- the README's first command's ingest of ``examples/docs`` (3 small files) into a fresh
  data folder: a new SQLite file, migrated, then the files processed (the first run);
- the same command again in that folder (the second run: nothing to do).

The modules each command imports are counted with ``python -X importtime`` in one extra
run (a count, not a time). ``--baseline DIR`` measures another checkout (an older commit,
e.g. from ``git worktree add``) in the same run, interleaved, for before/after figures.
``--install N`` also times ``pip install -e .`` into N fresh virtual environments (pip's
cache is whatever this machine has: say which in the docs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Sequence
from pathlib import Path

from harness import REPO, Report, child_env, median, scratch

SAMPLES = REPO / "examples" / "docs"
# Commands run from a folder holding no checkout: `python -m` puts the working folder first
# on the module path, which would shadow the checkout PYTHONPATH names.
NEUTRAL = Path(tempfile.gettempdir())


def run(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command to its end from ``NEUTRAL``; a failure ends the benchmark."""
    proc = subprocess.run(
        args, env=env, cwd=NEUTRAL, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def timed(args: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command; return its wall time and the CPU time of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run(args, env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def modules_imported(args: Sequence[str], env: dict[str, str]) -> int:
    """How many modules the command (and any child process it starts) imports."""
    proc = run([args[0], "-X", "importtime", *args[1:]], env)
    return sum(1 for line in proc.stderr.splitlines() if line.startswith("import time:")) - 1


def ledger(*args: str) -> list[str]:
    return [sys.executable, "-m", "ledger", *args]


def install_once(folder: Path) -> float:
    """Seconds to ``pip install -e REPO`` into a new virtual environment in ``folder``."""
    venv.EnvBuilder(with_pip=True).create(folder)
    started = time.perf_counter()
    subprocess.run(
        [str(folder / "bin" / "pip"), "install", "-q", "-e", str(REPO)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    parser.add_argument("--install", type=int, default=0, help="pip installs to time (slow)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="another checkout (an older commit) to measure in the same run, interleaved",
    )
    args = parser.parse_args()
    report = Report("startup", {**vars(args), "baseline": str(args.baseline or "")})
    checkouts = {"": REPO}
    if args.baseline is not None:
        checkouts["baseline: "] = args.baseline.resolve()
    with scratch("startup") as work:
        measure(report, work, args.runs, checkouts)
    if args.install:
        install(report, args.install)
    report.write()


# A command: its arguments and environment, or None for a new data folder at every run.
Command = tuple[list[str], dict[str, str] | None]


def ledger_commands(
    work: Path, label: str, checkout: Path
) -> tuple[dict[str, Command], dict[str, str]]:
    """The ledger's commands run from ``checkout``, and their environment without a home."""
    base = {k: v for k, v in child_env().items() if not k.startswith("LEDGER_")}
    base["PYTHONPATH"] = str(checkout)  # this checkout's package, not the installed one
    env = {**base, "LEDGER_HOME": str(work / f"{label or 'this'}home")}
    # The sample batch for `status`, made once (not timed).
    first = run(ledger("ingest", str(SAMPLES), "--json"), env)
    batch_id = json.loads(first.stdout)["batch"]["id"]
    commands: dict[str, Command] = {
        f"{label}ledger --help": (ledger("--help"), env),
        f"{label}ledger status BATCH --json": (ledger("status", batch_id, "--json"), env),
        f"{label}ledger ingest examples/docs, first run (fresh home)": (
            ledger("ingest", str(SAMPLES)),
            None,
        ),
        f"{label}ledger ingest examples/docs, second run": (ledger("ingest", str(SAMPLES)), env),
    }
    return commands, base


def measure(report: Report, work: Path, runs: int, checkouts: dict[str, Path]) -> None:
    """The start-up table: every command ``runs`` times, interleaved."""
    floor_env = {k: v for k, v in child_env().items() if not k.startswith("LEDGER_")}
    commands: dict[str, Command] = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], floor_env),
        "python -c 'import sqlalchemy' (floor)": (
            [sys.executable, "-c", "import sqlalchemy"],
            floor_env,
        ),
    }
    bases: dict[str, dict[str, str]] = {}
    for label, checkout in checkouts.items():
        more, base = ledger_commands(work, label, checkout)
        commands.update(more)
        bases.update({name: base for name in more})
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    fresh = 0
    for _ in range(runs):
        # Interleaved, so that a change in the machine's load touches every row alike.
        for name, (argv, command_env) in commands.items():
            if command_env is None:
                fresh += 1
                command_env = {**bases[name], "LEDGER_HOME": str(work / f"fresh-{fresh}")}
            wall, cpu = timed(argv, command_env)
            walls[name].append(wall)
            cpus[name].append(cpu)

    interpreter = median(walls["python -c pass (floor)"])
    sqlalchemy = median(walls["python -c 'import sqlalchemy' (floor)"])
    rows = []
    for name, (argv, command_env) in commands.items():
        if command_env is None:
            fresh += 1
            command_env = {**bases[name], "LEDGER_HOME": str(work / f"fresh-{fresh}")}
        wall = median(walls[name])
        rows.append(
            [
                name,
                wall,
                median(cpus[name]),
                wall / interpreter,
                wall / sqlalchemy,
                modules_imported(argv, command_env),
            ]
        )
    report.section(
        f"Start-up, medians of {runs} (seconds; CPU includes child processes)",
        ["command", "wall s", "CPU s", "x python -c pass", "x import sqlalchemy", "modules"],
        rows,
    )


def install(report: Report, runs: int) -> None:
    """The install table: ``pip install -e .`` into ``runs`` fresh virtual environments."""
    times = []
    for i in range(runs):
        with scratch("venv") as folder:
            times.append(install_once(folder / f"venv{i}"))
    report.section(
        f"pip install -e . into a fresh virtual environment, {runs} runs",
        ["median s", "min s", "max s"],
        [[median(times), min(times), max(times)]],
    )
    report.note(
        "pip's wheel cache and index are this machine's (warm after the first install); "
        "the time is downloads (if any), unpacking and the editable build"
    )


if __name__ == "__main__":
    main()
