"""Inference: generation engines (hf; vllm and sglang when installed), the terminal chat, and the
OpenAI-compatible server with its web chat page.

- build_engine(cfg) -> Engine                     llmft.infer.engine
- SamplingParams, Completion, TextStream          llmft.infer.engine
- chat(cfg, run_dir)    task=chat                 llmft.infer.chat
- serve(cfg, run_dir)   task=serve                llmft.infer.serve
- create_app(settings, engine=None, scorer=None)  llmft.infer.api (scorer: llmft.model.reward)
"""
