"""``python -m aiaas.catalog --home DIR [--quick] NAME...``: build catalog models (used by the server's
background builder, one subprocess per model, so a build never blocks serving)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from aiaas.catalog.builder import build, status
from aiaas.catalog.registry import select
from aiaas.registry import ModelRepository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiaas.catalog")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    # The server stops a build with SIGTERM: exit through Python so the build's `finally` removes its temporary
    # directory (Python's default for SIGTERM is to die at once, leaving hundreds of MB behind).
    signal.signal(signal.SIGTERM, _exit)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    repo = ModelRepository(args.home / "models")
    repo.ensure()
    failed = 0
    for spec in select(args.names):
        if spec.name not in args.names and status(spec, repo, args.quick).state == "built":
            continue  # a dependency that is already there

        def progress(frac: float, msg: str, name: str = spec.name) -> None:
            print(f"PROGRESS {name} {frac:.3f} {msg}", flush=True)

        st = build(spec, repo, args.quick, progress)
        print(f"STATUS {spec.name} {st.state} {st.detail}", flush=True)
        failed += st.state != "built"
    return 1 if failed else 0


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
