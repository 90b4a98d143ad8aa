"""Export: merge a LoRA adapter into its base (merge), save sharded safetensors with the tokenizer and a
generation config (save), write an Ollama Modelfile (ollama), optionally GPTQ-quantize (gptq) and push to
the hub; `llmft.export.task.export` runs them for `python run.py task=export`."""
