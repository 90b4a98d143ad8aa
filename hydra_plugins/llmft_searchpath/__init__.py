"""Puts experiments/ on Hydra's search path, so `+experiment=<name>` and `+sweep=<name>` find
the recipes there whatever the working directory."""

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"


class LlmftSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if EXPERIMENTS_DIR.is_dir():
            search_path.append(provider="llmft-experiments", path=f"file://{EXPERIMENTS_DIR}")
