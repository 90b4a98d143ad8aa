"""Config schemas, registration and validation. Imports no torch: composing must stay fast."""

from llmft.config.schema import LlmftConfig

SCHEMA_NAME = "llmft_schema"


def register_schema() -> None:
    """Put the typed schema in Hydra's ConfigStore, where conf/config.yaml's defaults find it."""
    from hydra.core.config_store import ConfigStore

    from llmft.config.hydra_store import share_config_store_on_copy

    share_config_store_on_copy()
    ConfigStore.instance().store(name=SCHEMA_NAME, node=LlmftConfig)


__all__ = ["LlmftConfig", "SCHEMA_NAME", "register_schema"]
