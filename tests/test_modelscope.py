"""ModelScope as the hub (model.hub=modelscope, a dataset's hub, or LLaMA-Factory's USE_MODELSCOPE_HUB=1):
the download goes through the modelscope package (observed here, as no hub is reachable), and a missing
package is a config error with the pip command."""

from __future__ import annotations

import importlib.util
import json

import modelscope
import pytest
from conftest import compose

from llmft.checks.validate import validate
from llmft.config.errors import ConfigError
from llmft.data.loader import load_one
from llmft.model.loader import load_tokenizer, modelscope_snapshot, resolve_model_path

MS_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture
def modelscope_calls(monkeypatch, tmp_path):
    """What llmft asks ModelScope for; the answers are local copies: the tiny model for any model id,
    tmp_path for any dataset repository."""
    calls = []
    tiny_dir = resolve_model_path(compose().model)
    monkeypatch.setattr(
        modelscope,
        "snapshot_download",
        lambda model_id, revision=None, **_: calls.append(("model", model_id, revision)) or tiny_dir,
    )
    monkeypatch.setattr(
        modelscope,
        "dataset_snapshot_download",
        lambda dataset_id, **_: calls.append(("dataset", dataset_id)) or str(tmp_path),
    )
    monkeypatch.delenv("USE_MODELSCOPE_HUB", raising=False)
    modelscope_snapshot.cache_clear()  # each test asks ModelScope afresh
    yield calls
    modelscope_snapshot.cache_clear()


def hub_model(*overrides: str):
    return compose(f"model.name_or_path={MS_MODEL}", "model.tiny=null", *overrides).model


@pytest.mark.parametrize(("overrides", "env"), [(["model.hub=modelscope"], None), ([], "1")])
def test_the_model_comes_from_modelscope_when_switched_on(modelscope_calls, monkeypatch, overrides, env):
    if env:
        monkeypatch.setenv("USE_MODELSCOPE_HUB", env)  # LLaMA-Factory's switch; model.hub stays auto
    tokenizer = load_tokenizer(hub_model(*overrides))
    assert modelscope_calls == [("model", MS_MODEL, None)]
    assert tokenizer("hello").input_ids  # loaded from the copy ModelScope handed back


def test_huggingface_stays_the_default_hub(modelscope_calls):
    assert resolve_model_path(hub_model()) == MS_MODEL  # a hub id for transformers; ModelScope not asked
    assert modelscope_calls == []


def test_a_registry_entry_with_both_hubs_reads_the_modelscope_copy_when_switched_on(
    modelscope_calls, tmp_path, monkeypatch
):
    (tmp_path / "train.json").write_text(
        json.dumps([{"instruction": "Hi.", "input": "", "output": "Hello."}])
    )
    entry = {"path": "BelleGroup/train_0.5M_CN", "source": "hub", "ms_path": "AI-ModelScope/train_0.5M_CN"}
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    rows = load_one("belle", entry, compose().data, seed=0)
    assert modelscope_calls == [("dataset", "AI-ModelScope/train_0.5M_CN")]
    assert rows[0]["messages"][-1]["content"] == "Hello."


def test_without_the_package_the_config_check_gives_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "modelscope" else real_find_spec(name, *a),
    )
    with pytest.raises(
        ConfigError, match=r"model.name_or_path download from ModelScope.*pip install modelscope"
    ):
        validate(compose(f"model.name_or_path={MS_MODEL}", "model.tiny=null", "model.hub=modelscope"))
    validate(compose("model.hub=modelscope"))  # the tiny model is built locally: nothing to download
