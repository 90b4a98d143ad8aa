"""Experiment tracking settings."""

from __future__ import annotations

from urllib.parse import urlparse

from omegaconf import DictConfig

MLFLOW_STORES = ("sqlite", "http", "https", "databricks", "postgresql", "mysql", "mssql")


def logger(cfg: DictConfig) -> list[str]:
    problems = []
    uri = cfg.logger.tracking_uri
    if cfg.logger.mlflow and uri and urlparse(uri).scheme.split("+")[0] not in MLFLOW_STORES:
        problems.append(
            f"logger.tracking_uri={uri!r} is not a database or server URI (MLflow 3 refuses its file store): "
            "use sqlite:///<dir>/mlflow.db, or http://host:port for a tracking server."
        )
    return problems
