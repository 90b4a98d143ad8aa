"""llmft: compose the config groups in conf/ and run the selected task.

python run.py                                   # tiny model, demo data, CPU ok
python run.py model=llama3 method=lora_sft dataset=alpaca_en_demo
python run.py -m method.learning_rate=1e-4,2e-4 seed=1,2
python run.py --cfg job                         # the composed config, no training
python run.py --help                            # config groups and their options
"""

import hydra
from omegaconf import DictConfig

from llmft.config import register_schema
from llmft.config.errors import explain_config_errors
from llmft.track.jobs import keep_sweep_going

register_schema()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@keep_sweep_going  # in a multirun, a failing job is recorded FAILED and the other jobs still run
def main(cfg: DictConfig) -> float | None:
    """Returns the objective (cfg.task.objective) so Hydra sweepers can optimise it."""
    from llmft.main import run  # torch and friends load only after the config validated

    return run(cfg)


if __name__ == "__main__":
    with explain_config_errors():
        main()
