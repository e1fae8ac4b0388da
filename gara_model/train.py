"""`python -m gara_model.train [--config FILE] [key.sub=value ...]`: train GaRA adapters (or torchrun it).

With no arguments it trains GaRA adapters for the embedded tiny SAM on synthetic degraded scenes, on the CPU
in a few minutes, then evaluates them against the frozen base.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from gara_model.cli import one_line_errors
from gara_model.engine.config import load_train_config


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (kill, a batch scheduler, torchrun) ends training as Ctrl-C does: by an exception, so that the
    DataLoader workers are shut down with the process instead of outliving it (and finally blocks run)."""

    def exit_now(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gara_model.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file (see config/train/)")
    parser.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-4 adapter.ranks=[16,256]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with one_line_errors(parser), sigterm_unwinds():
        cfg = load_train_config(args.config, args.overrides + (["resume=true"] if args.resume else []))
        from gara_model.engine.trainer import train

        run_dir = train(cfg)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
