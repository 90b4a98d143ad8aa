"""task=board: serve the board on task.host:task.port (127.0.0.1:7860 by default)."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from omegaconf import DictConfig

from llmft.infer.access import LOOPBACK_HOSTS


def board(cfg: DictConfig, run_dir: Path) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine
    from llmft.board.ui import CSS, Board, BoardSettings, build_page
    from llmft.infer.serve import api_key

    settings = BoardSettings(Path.cwd(), cfg.logger.experiment_name, cfg.logger.tracking_uri)
    token = api_key(cfg)
    # Anyone who reaches the board can start processes here: other addresses need the token (checked
    # at compose time); on 127.0.0.1 it is asked for only when one is set.
    auth = (lambda _user, password: hmac.compare_digest(password, token)) if token else None
    where = "local only" if cfg.task.host in LOOPBACK_HOSTS else "sign in with any name and the token"
    print(
        f"Board on http://{cfg.task.host}:{cfg.task.port} ({where}); Ctrl-C ends the board, not its runs.",
        flush=True,
    )
    build_page(Board(settings)).queue().launch(
        server_name=cfg.task.host,
        server_port=cfg.task.port,
        auth=auth,
        auth_message="Sign in with any user name and the board's token (task.api_key / LLMFT_API_KEY).",
        show_error=True,
        css=CSS,
        quiet=True,
    )
