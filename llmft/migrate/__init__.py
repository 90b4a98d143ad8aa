"""Come from LLaMA-Factory in one command: its dataset registry and its training YAMLs as llmft configs.

    python -m llmft.migrate dataset-info data/dataset_info.json            # -> conf/dataset/<name>.yaml
    python -m llmft.migrate train-yaml examples/train_lora/llama3_lora_sft.yaml   # -> experiments/experiment/

A tool on top of the layers: it reads and writes files and config only (config, and data's template
table), never torch. Whatever it cannot carry over is printed, by key, with what to do instead.
"""
