"""llmft: fine-tune large language models from Hydra-composed experiments.

Importing this package is cheap: torch, transformers and TRL load only when a task runs.

Layers (an import only goes down; packages on one line do not import each other; `make lint` checks it
with import-linter, see [tool.importlinter] in pyproject.toml):

    bench | board | migrate | pipeline   tools and tasks that run other tasks
    main                                 validate, then run the selected task
    checks | launch                      compose-time checks (torch-free) | processes and task dispatch
    train | evaluate | export            the tasks
    infer                                generation engines and serving (evaluate generates with them)
    track                                what a run records: files, MLflow, TensorBoard, W&B, sweeps
    model                                every tokenizer and model load, adapters, quantization
    data                                 formats, templates, tokenising, packing
    config                               schemas, errors, paths, the run-dir layout

A helper two packages of one layer need lives in a layer below them.
"""

__version__ = "0.1.0"
