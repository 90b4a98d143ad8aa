"""python -m llmft.migrate dataset-info PATH/dataset_info.json [--out conf/dataset/]
python -m llmft.migrate train-yaml LF.yaml [--out experiments/experiment/NAME.yaml]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmft.config.paths import PROJECT_ROOT
from llmft.migrate.dataset_info import convert_registry
from llmft.migrate.report import Report
from llmft.migrate.train_yaml import migrate_file

CONF_DIR = PROJECT_ROOT / "conf"
EXPERIMENTS_DIR = PROJECT_ROOT / "experiments" / "experiment"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmft.migrate", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    registry = commands.add_parser(
        "dataset-info", help="LLaMA-Factory's dataset_info.json -> conf/dataset/*.yaml"
    )
    registry.add_argument("registry", type=Path, help="a LLaMA-Factory dataset_info.json")
    registry.add_argument("--out", type=Path, default=CONF_DIR / "dataset", help="default: conf/dataset/")
    registry.add_argument("--force", action="store_true", help="replace entries that exist already")
    train = commands.add_parser("train-yaml", help="a LLaMA-Factory YAML -> experiments/experiment/NAME.yaml")
    train.add_argument("yaml", type=Path, help="a LLaMA-Factory train, predict, eval, chat or export YAML")
    train.add_argument("--out", type=Path, help="default: experiments/experiment/<the YAML's name>.yaml")
    train.add_argument(
        "--datasets",
        type=Path,
        default=CONF_DIR / "dataset",
        help="where its datasets' entries are (conf/dataset/)",
    )
    train.add_argument("--force", action="store_true", help="replace the experiment if it exists")
    return parser


def _experiment_arguments(out: Path) -> str:
    """How run.py finds the experiment: experiments/experiment/ is on its search path; other folders are added."""
    if out.resolve().parent == EXPERIMENTS_DIR:
        return f"+experiment={out.stem}"
    return f"+experiment={out.stem} hydra.searchpath=[file://{out.resolve().parent.parent}]" + (
        "" if out.parent.name == "experiment" else "  (after moving it into a folder named experiment/)"
    )


def _print(title: str, report: Report, then: str) -> None:
    print("\n".join([title, *report.lines(), then]))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "dataset-info":
            report = convert_registry(args.registry, args.out, args.force)
            _print(f"{args.registry} -> {args.out}/", report, "Select one with: python run.py dataset=<name>")
        else:
            out = args.out or EXPERIMENTS_DIR / f"{args.yaml.stem}.yaml"
            report = migrate_file(args.yaml, out, CONF_DIR, args.datasets, args.force)
            _print(
                f"{args.yaml} -> {out}", report, f"Run it with: python run.py {_experiment_arguments(out)}"
            )
    except ValueError as err:
        sys.stderr.write(f"llmft: migrate error: {err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
