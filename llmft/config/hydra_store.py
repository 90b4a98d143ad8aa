"""Hydra's copies of its config repository share the ConfigStore instead of copying it.

Hydra deep-copies its config repository every time it composes or lists a group's options, and the
repository's structured-config source holds the ConfigStore: each copy rebuilt every stored node,
Hydra's own configs, the plugins' and llmft's schema (about 15 ms apiece here). `--help` lists every
group, which took 113 copies (1.5-2.2 s); a sweep copies once per job. Hydra's main branch already
shares the store (facebookresearch/hydra#2928, not in the 1.3 releases): its source looks the singleton
up on use. Until a release has that, a deep copy of the ConfigStore is the ConfigStore, which is what
that lookup gives. (The patch goes on the store: Hydra re-executes its source's module when it scans
for plugins, so a patch on the source's class would be lost.)
"""

from __future__ import annotations


def share_config_store_on_copy() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.__deepcopy__ = _the_same_store


def _the_same_store(store, memo):
    return store
