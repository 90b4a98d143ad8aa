"""llmft: fine-tune large language models from Hydra-composed experiments.

Importing this package is cheap: torch, transformers and TRL load only when a task runs.
"""

__version__ = "0.1.0"
