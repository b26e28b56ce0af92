"""``georef-train`` / ``python -m training``: fine-tune, measure throughput, or compare checkpoints.

Examples:
    georef-train --config training/configs/aliked_lightglue.yaml epochs=5 lr=5e-5
    georef-train --config training/configs/aliked_lightglue.yaml --throughput
    georef-train --config training/configs/aliked_lightglue.yaml --evaluate runs/aliked_lightglue/checkpoints/best.pth
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="georef-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file; defaults from training.config.TrainConfig.")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="Config overrides.")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--throughput", action="store_true",
                      help="Samples/s of padded batches against the per-sample loop, then stop.")
    what.add_argument("--evaluate", metavar="CKPT",
                      help="True error of a checkpoint ('pretrained' for the released weights) on the validation tiles.")
    parser.add_argument("--batches", type=int, default=3, help="Batches timed by --throughput.")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    bars = not args.quiet and sys.stderr.isatty()  # progress bars on a terminal only, never in log files

    from georef.errors import GeorefError
    from training.config import load_config
    from training.train import Trainer, evaluate, measure_throughput

    try:
        config = load_config(args.config, args.overrides)
    except (ValueError, OSError) as exc:
        print(f"georef-train: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.evaluate:
            weights = None if args.evaluate == "pretrained" else Path(args.evaluate)
            name = "pretrained" if weights is None else weights.stem
            result = evaluate(config, weights, Path(config.out) / "eval" / name, progress=bars)
        else:
            trainer = Trainer(config, progress=bars)
            if args.throughput:
                result = measure_throughput(trainer, trainer.training_samples(), args.batches)
            else:
                result = trainer.fit()
    except GeorefError as exc:  # weights that cannot be read, a season missing from the data: the user's to mend
        print(f"georef-train: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
