"""Where things live: the project root, the user cache, local data files."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet", ".txt")  # .txt: one text sample per line


def cache_root() -> Path:
    """$LLMFT_CACHE, else ~/.cache/llmft: tiny models and tokenised data live here, outside the repo."""
    return Path(os.environ.get("LLMFT_CACHE", Path.home() / ".cache" / "llmft")).expanduser()


def resolve_local_path(path: str) -> Path | None:
    """A relative path is looked up in the working directory first, then in the project root."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for base in (Path.cwd(), PROJECT_ROOT):
        if (base / candidate).exists():
            return base / candidate
    return None


def is_local_dataset(path: str, source: str) -> bool:
    """`source: auto` means a file when one exists or the name has a data file extension."""
    if source != "auto":
        return source == "file"
    return resolve_local_path(path) is not None or path.endswith(DATA_EXTENSIONS)
