"""task=predict and the generation metrics it reports."""

from __future__ import annotations

import json

import pytest
from conftest import compose

from llmft.data.canonical import prompt_and_reply
from llmft.evaluate.metrics import generation_metrics, words
from llmft.main import run


def test_words_are_jieba_words_without_whitespace():
    assert words("The cat, 北京是中国的首都。") == [
        "The",
        "cat",
        ",",
        "北京",
        "是",
        "中国",
        "的",
        "首都",
        "。",
    ]


def test_metrics_equal_the_definitions_on_an_english_example():
    prediction, reference = "the cat sat on a mat", "the cat sat on the mat"
    # 6 words each. Unigrams: the, cat, sat, on, mat match (5 of 6; 'a' does not).
    # Bigrams: the-cat, cat-sat, sat-on match (3 of 5). Trigrams: the-cat-sat, cat-sat-on (2 of 4).
    # 4-grams: the-cat-sat-on (1 of 3). Equal lengths: no brevity penalty.
    metrics = generation_metrics([prediction], [reference])
    assert metrics["bleu-4"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)  # 53.728...
    assert metrics["rouge-1"] == pytest.approx(100 * 5 / 6)  # P = R = 5/6
    assert metrics["rouge-2"] == pytest.approx(100 * 3 / 5)
    assert metrics["rouge-l"] == pytest.approx(100 * 5 / 6)  # LCS: the cat sat on mat
    assert metrics["exact_match"] == 0


def test_metrics_on_chinese_count_words_not_bytes():
    prediction, reference = "北京是中国的首都。", "中国的首都是北京。"
    # words: 北京 是 中国 的 首都 。 / 中国 的 首都 是 北京 。  (6 each, the same six)
    # bigrams matching: 中国的, 的首都 (2 of 5); trigrams: 中国的首都 (1 of 4); 4-grams: none of 3,
    # which sacrebleu's exponential smoothing counts as 1 / (2 * 3).
    metrics = generation_metrics([prediction], [reference])
    assert metrics["bleu-4"] == pytest.approx(100 * (1 * 2 / 5 * 1 / 4 * 1 / 6) ** 0.25)  # 35.93...
    assert metrics["rouge-1"] == pytest.approx(100.0)
    assert metrics["rouge-2"] == pytest.approx(40.0)
    assert metrics["rouge-l"] == pytest.approx(100 * 4 / 6)  # LCS: 中国 的 首都 。


def test_corpus_bleu_pools_counts_and_rouge_averages_samples():
    predictions, references = ["the cat sat on a mat", "Paris ."], ["the cat sat on the mat", "Paris ."]
    metrics = generation_metrics(predictions, references)
    # 1-grams 7/8, 2-grams 4/6, 3-grams 2/4, 4-grams 1/3 over both samples
    assert metrics["bleu-4"] == pytest.approx(100 * (7 / 8 * 4 / 6 * 2 / 4 * 1 / 3) ** 0.25)
    assert metrics["rouge-1"] == pytest.approx(100 * (5 / 6 + 1) / 2)
    assert metrics["exact_match"] == 50


def test_prompt_is_the_conversation_before_the_last_reply():
    row = {
        "system": "Be kind.",
        "tools": "",
        "chosen": None,
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ],
    }
    messages, label = prompt_and_reply(row)
    assert label == "d"
    assert [m["content"] for m in messages] == ["Be kind.", "a", "b", "c"]
    assert prompt_and_reply({"system": "", "messages": [], "chosen": None, "text": "plain"}) == ([], None)


def test_predict_writes_one_prediction_per_sample_and_their_metrics(tmp_path):
    cfg = compose(
        "task=predict",
        "dataset=demo_sft",
        "data.max_samples=10",
        "task.batch_size=4",
        "generation.do_sample=false",
        "generation.max_new_tokens=8",
    )
    objective = run(cfg, run_dir=tmp_path)

    lines = [json.loads(line) for line in (tmp_path / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 10
    assert all(set(line) == {"prompt", "label", "prediction"} for line in lines)
    assert lines[0]["prompt"].endswith("<|im_start|>assistant\n")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    recomputed = generation_metrics([line["prediction"] for line in lines], [line["label"] for line in lines])
    assert {name: metrics[name] for name in recomputed} == pytest.approx(recomputed)
    assert metrics["predict_samples"] == 10
    assert objective == metrics["rouge-l"]


def test_predict_metrics_and_predictions_reach_the_logger(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose(
        "task=predict",
        "dataset=demo_sft",
        "data.max_samples=4",
        "generation.do_sample=false",
        "generation.max_new_tokens=4",
        f"logger.tracking_uri={store}",
    )
    run(cfg, run_dir=tmp_path / "run")

    client = MlflowClient(tracking_uri=store)
    [experiment] = [e for e in client.search_experiments() if e.name == cfg.logger.experiment_name]
    [recorded] = client.search_runs([experiment.experiment_id])
    assert recorded.info.status == "FINISHED"
    assert recorded.data.tags["llmft.task"] == "predict"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert recorded.data.metrics["rouge-l"] == pytest.approx(metrics["rouge-l"])
    artifacts = {artifact.path for artifact in client.list_artifacts(recorded.info.run_id)}
    assert {"generated_predictions.jsonl", "metrics.json"} <= artifacts
