"""Models: the offline tiny-model builder (tiny), tokenizer/model loading with dtype, device and
quantization (loader), what trains (adapters: lora, freeze, full) and the saved artefact (save).

Import the submodules directly; `llmft.model.tiny` stays free of torch at import time.
"""
