"""task=board: the Train tab's checks, runs as processes (start, find, stop, resume, delete), progress;
then the whole page in headless Chromium, training and chatting with the tiny model."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, compose
from omegaconf import OmegaConf

from llmft.board import checks, finished, processes
from llmft.board.form import EXTRA, GROUPS, KNOBS, TrainForm, run_py_argv
from llmft.board.progress import Pace, curves, log_tail, progress
from llmft.config.errors import ConfigError
from llmft.main import check

FIELDS = [*GROUPS, "experiment", *KNOBS, EXTRA]
# A stand-in for a run: ends with run.py's stop exit code on USR2, like a training run does.
STOPPABLE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGUSR2, lambda *_: sys.exit(130))\n"
    "print('started', flush=True)\n"
    "time.sleep(120)\n"
)


def test_a_field_holds_one_value_so_injections_and_sweeps_are_refused():
    overrides = TrainForm(
        knobs={
            "method.learning_rate": "1e-4 hydra.run.dir=/tmp/x",
            "method.lora_rank": "8,16",
            "seed": "${oc.env:HOME}",
            "method.max_steps": "5",
            "method.lora_target": "[q_proj,v_proj]",
        }
    ).overrides()
    assert overrides.all == ["method.max_steps=5", "method.lora_target=[q_proj,v_proj]"]
    assert "not one value" in overrides.refused["method.learning_rate"]
    assert "sweep" in overrides.refused["method.lora_rank"]
    assert "not one value" in overrides.refused["seed"]
    argv = run_py_argv(sys.executable, overrides.all)
    assert argv[1] == str(ROOT / "run.py") and not any("hydra" in argument for argument in argv[2:])


@pytest.mark.parametrize(
    "extra, reason",
    [
        ("hydra.run.dir=/tmp/x", "board's to set"),
        ("-m", "not key=value"),
        ("task.api_key=sk-typed", "Secrets fields"),
        ("seed=1,2", "sweep"),
        ("seed=1;reboot", "not one value"),
        ("'seed=1 method.max_steps=2'", "not one value"),
    ],
)
def test_the_extra_field_refuses_what_would_change_more_than_a_config_value(extra, reason):
    overrides = TrainForm(extra=f"method.max_steps=3 {extra}").overrides()
    assert reason in overrides.refused[EXTRA] and overrides.extra == []


def problems_of(form: TrainForm) -> tuple:
    overrides = form.overrides()
    cfg, problems = checks.composed(overrides.all)
    return cfg, checks.problems_by_field(problems, FIELDS, overrides.extra)


def test_every_problem_reaches_its_field_with_the_suggestion():
    _, typed_group = problems_of(TrainForm(groups={"method": "lora_sfft"}))
    assert list(typed_group) == ["method"] and "Did you mean 'lora_sft'" in typed_group["method"]
    _, typed_extra = problems_of(TrainForm(extra="quantization=bnb_4bt"))
    assert list(typed_extra) == [EXTRA] and "Did you mean 'bnb_4bit'" in typed_extra[EXTRA]
    _, typed_key = problems_of(TrainForm(extra="method.lerning_rate=1e-4"))
    assert "Did you mean 'learning_rate'" in typed_key[EXTRA]
    _, bad_value = problems_of(TrainForm(knobs={"data.val_size": "-1"}))
    assert list(bad_value) == ["data.val_size"]
    cfg, none = problems_of(
        TrainForm(
            groups={"model": "tiny", "method": "lora_sft", "dataset": ["demo_sft"]},
            knobs={"method.max_steps": "7"},
        )
    )
    assert none == {} and cfg.method.max_steps == 7


def test_the_board_binds_other_addresses_only_with_a_token(monkeypatch):
    monkeypatch.delenv("LLMFT_API_KEY", raising=False)
    check(compose("task=board"))  # 127.0.0.1:7860
    assert compose("task=board").task.port == 7860
    with pytest.raises(ConfigError, match="LLMFT_API_KEY"):
        check(compose("task=board", "task.host=0.0.0.0"))
    monkeypatch.setenv("LLMFT_API_KEY", "board-token")
    check(compose("task=board", "task.host=0.0.0.0"))


def test_progress_eta_and_curves_come_from_the_run_dir(tmp_path):
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(compose("method.max_steps=40"), tmp_path / ".hydra" / "config.yaml")
    records = [{"step": s, "epoch": s / 20, "loss": 3.0 - s / 10} for s in range(1, 11)]
    records.append({"step": 10, "eval_loss": 2.5})
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pace = Pace()
    assert progress(tmp_path, pace, now=1000.0).describe() == "step 10 / 40 (25%)"  # no pace yet
    with (tmp_path / "trainer_log.jsonl").open("a") as log:  # 10 more steps in 20 s: 2 s a step
        log.writelines(json.dumps({"step": s, "epoch": s / 20, "loss": 2.0}) + "\n" for s in range(11, 21))
    assert progress(tmp_path, pace, now=1020.0).describe() == "step 20 / 40 (50%, about 0:40 left)"
    rows = curves(tmp_path)
    assert [r["step"] for r in rows if r["curve"] == "loss"] == list(range(1, 21))
    assert [r for r in rows if r["curve"] == "eval_loss"] == [
        {"step": 10, "value": 2.5, "curve": "eval_loss"}
    ]
    OmegaConf.save(compose("method.num_train_epochs=3"), tmp_path / ".hydra" / "config.yaml")
    assert progress(tmp_path, Pace()).total == 60  # 20 steps an epoch, 3 epochs
    (tmp_path / "console.log").write_text("loading\n 10%|#   | 1/10\r 20%|##  | 2/10\rdone\n")
    assert log_tail(tmp_path / "console.log", lines=2) == " 20%|##  | 2/10\ndone"


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise TimeoutError(f"no {what} within {timeout} s")


def start_stand_in(root: Path, name: str, secrets: dict | None = None) -> processes.BoardRun:
    run = processes.start(
        [sys.executable, "-c", STOPPABLE], root / "outputs" / "stand-ins" / name, "train", secrets
    )
    wait_for(lambda: "started" in (run.run_dir / processes.CONSOLE_FILE).read_text(), what="start")
    return run


def test_stop_signals_only_its_own_run_and_a_restarted_board_finds_the_others(tmp_path):
    first, second = start_stand_in(tmp_path, "a"), start_stand_in(tmp_path, "b")
    try:
        assert {run.run_dir.name: run.status for run in processes.find_runs(tmp_path)} == {
            "a": "RUNNING",
            "b": "RUNNING",
        }
        processes.stop(first)
        wait_for(lambda: processes.BoardRun.load(first.run_dir).returncode == 130, what="stop")
        found = {run.run_dir.name: run for run in processes.find_runs(tmp_path)}  # as a new board sees them
        assert found["b"].status == "RUNNING" and found["b"].pid == second.pid
        assert found["a"].status == "ENDED"
        reused = processes.BoardRun(**{**vars(found["b"]), "process_start": "0"})  # same pid, another process
        with pytest.raises(processes.BoardError, match="not running"):
            processes.stop(reused)
    finally:
        os.kill(second.pid, signal.SIGKILL)


def test_secrets_reach_the_run_environment_and_no_file(tmp_path):
    run = processes.start(
        [
            sys.executable,
            "-c",
            "import os, hashlib; print(hashlib.sha1(os.environ['HF_TOKEN'].encode()).hexdigest())",
        ],
        tmp_path / "outputs" / "stand-ins" / "s",
        "train",
        secrets={"HF_TOKEN": "hf_s3cr3t"},
    )
    wait_for(lambda: processes.BoardRun.load(run.run_dir).returncode == 0, what="the end")
    assert hashlib.sha1(b"hf_s3cr3t").hexdigest() in (run.run_dir / processes.CONSOLE_FILE).read_text()
    assert not [path for path in run.run_dir.rglob("*") if "hf_s3cr3t" in path.read_text()]


def test_a_second_run_starts_only_when_confirmed(tmp_path):
    from llmft.board.ui import Board, BoardSettings, default_choices

    board = Board(BoardSettings(tmp_path, "llmft", None))
    busy = start_stand_in(tmp_path, "busy")
    defaults = default_choices()
    assert defaults["model"] == "tiny" and defaults["dataset"] == ["demo_sft"]  # conf/config.yaml's
    values = [defaults[g] for g in GROUPS] + [""] + ["" for _ in KNOBS] + ["seed=5"]
    secrets = ["" for _ in range(4)]
    try:
        message, _ = board.start(False, *values, *secrets)
        assert "Not started" in message and str(busy.run_dir) in message
        assert len(processes.find_runs(tmp_path)) == 1
        message, _ = board.start(True, *values, *secrets)
        assert message.startswith("Started `python run.py model=tiny") and "seed=5" in message
        started = [run for run in processes.find_runs(tmp_path) if run.pid != busy.pid][0]
        assert started.argv[-1] == f"hydra.run.dir={started.run_dir}"
    finally:
        for run in processes.running(processes.find_runs(tmp_path)):
            os.kill(run.pid, signal.SIGKILL)


def test_slurm_runs_are_submitted_as_a_sweep_of_one(tmp_path):
    from llmft.board.ui import training_command

    argv, run_dir = training_command(["hardware=slurm", "seed=3"], tmp_path, slurm=True)
    assert argv[2:] == ["-m", "hardware=slurm", "seed=3", f"hydra.sweep.dir={run_dir}"]
    assert run_dir.parent.parent == tmp_path / "multirun"
    assert compose("hardware=slurm").hardware.scheduler == "slurm"  # what the board asks to decide


def test_deleting_refuses_running_runs_and_what_is_not_a_run_dir(tmp_path):
    run = start_stand_in(tmp_path, "r")
    (run.run_dir / ".hydra").mkdir()
    try:
        with pytest.raises(processes.BoardError, match="stop it first"):
            processes.delete_run_dir(run.run_dir, processes.find_runs(tmp_path))
        with pytest.raises(processes.BoardError, match="not a run dir"):
            processes.delete_run_dir(tmp_path / "outputs", processes.find_runs(tmp_path))
    finally:
        os.kill(run.pid, signal.SIGKILL)
    wait_for(lambda: not processes.BoardRun.load(run.run_dir).running, what="the end")
    processes.delete_run_dir(run.run_dir, processes.find_runs(tmp_path))
    assert not run.run_dir.exists()


def test_eval_predict_export_are_the_plain_commands_on_the_runs_result(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "- method.max_steps=5\n- dataset=[demo_sft]\n- task=train\n"
    )
    with pytest.raises(FileNotFoundError, match="has it finished"):
        finished.task_overrides(run_dir, "eval", tmp_path / "eval")
    (run_dir / "adapter").mkdir()
    assert finished.task_overrides(run_dir, "export", tmp_path / "x") == [
        "method.max_steps=5",
        "dataset=[demo_sft]",
        "task=export",
        f"model.adapter_path={run_dir.resolve() / 'adapter'}",
        f"task.export_dir={(tmp_path / 'x').resolve() / 'exported'}",
        f"hydra.run.dir={(tmp_path / 'x').resolve()}",
    ]
    cfg = compose(*finished.task_overrides(run_dir, "eval", tmp_path / "e")[:-1])
    assert cfg.task.name == "eval" and cfg.model.adapter_path == str(run_dir.resolve() / "adapter")


# --- the page, end to end -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_board(workdir: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """`python run.py task=board` in workdir (its runs go to workdir/outputs)."""
    import urllib.request

    port = free_port()
    log = open(workdir / f"board-{port}.log", "w")
    board = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "task=board",
            f"task.port={port}",
            f"hydra.run.dir={workdir}/board-{port}",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        if board.poll() is not None:
            raise RuntimeError((workdir / f"board-{port}.log").read_text())
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    wait_for(answers, timeout=180, what="board")
    return board, url


@pytest.mark.slow
def test_the_board_in_a_browser(tmp_path):
    """Train (preview, typo, start, watch), a board restart mid-run, Stop and Resume, compare, chat."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_serve import _chromium

    browser = _chromium()
    browser.set_window_size(1400, 2000)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    board, url = start_board(tmp_path, env)
    wait = WebDriverWait(browser, 240, poll_frequency=0.3)

    def text(element_id: str) -> str:
        found = browser.find_elements(By.ID, element_id)
        return found[0].text if found else ""

    def type_into(element_id: str, value: str) -> None:
        box = browser.find_element(By.CSS_SELECTOR, f"#{element_id} input, #{element_id} textarea")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(value)

    def tab(name: str) -> None:
        browser.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']").click()

    def shot(name: str) -> None:
        browser.save_screenshot(str(tmp_path / f"board-{name}.png"))

    def step() -> int:
        status = text("run-status")
        return int(status.split("step ")[1].split(" ")[0]) if "step " in status else 0

    try:
        browser.get(url)
        wait.until(lambda _: "model=tiny method=lora_sft" in text("command"))
        assert "'dataset=[demo_sft]'" in text("command")
        type_into("field-method-max-steps", "5000")  # long enough to still run after a board restart
        type_into("field-method-logging-steps", "1")
        type_into("field-method-save-steps", "1000")  # the only checkpoint will be Stop's
        wait.until(
            lambda _: "method.max_steps=5000 method.logging_steps=1 method.save_steps=1000" in text("command")
        )
        type_into("field-extra", "quantization=bnb_4bt")
        wait.until(lambda _: "Did you mean 'bnb_4bit'" in text("error-extra"))
        assert "not startable" in text("command")
        shot("typo")
        type_into("field-method-learning-rate", "1e-2 hydra.run.dir=/tmp/elsewhere")
        wait.until(lambda _: "not one value" in text("error-method-learning-rate"))
        type_into("field-method-learning-rate", "")
        type_into("field-extra", "")
        wait.until(lambda _: "not startable" not in text("command") and not text("error-extra"))

        browser.find_element(By.ID, "start").click()
        wait.until(lambda _: text("start-status").startswith("Started"))
        wait.until(lambda _: step() >= 2 and "points" in text("loss-summary"))
        first_seen = step()
        wait.until(lambda _: step() > first_seen)  # the counter moves on its own
        shot("training")
        (run,) = processes.find_runs(tmp_path)
        assert run.run_dir.parent.parent == tmp_path / "outputs"

        board.terminate()  # the board goes; the run does not
        board.wait(timeout=30)
        assert processes.BoardRun.load(run.run_dir).running
        before_restart = step()
        board, url = start_board(tmp_path, env)
        browser.get(url)
        wait.until(lambda _: str(run.run_dir) in text("run-status") and step() >= before_restart)
        assert "RUNNING" in text("run-status")
        shot("restarted")

        browser.find_element(By.ID, "stop").click()
        wait.until(lambda _: "STOPPED" in text("run-status"))
        stopped_at = step()
        assert (run.run_dir / "checkpoints" / f"checkpoint-{stopped_at}" / "trainer_state.json").exists()
        assert "llmft: stopped: stopped at step" in (run.run_dir / processes.CONSOLE_FILE).read_text()

        tab("Runs")
        browser.find_element(By.ID, "runs-refresh").click()
        wait.until(lambda _: "KILLED" in text("runs-table"))
        browser.find_element(By.XPATH, "//*[@id='runs-chosen']//label[contains(., 'KILLED')]").click()
        browser.find_element(By.ID, "runs-resume").click()
        wait.until(lambda _: text("runs-message").startswith("Resumed"))
        tab("Train")
        wait.until(lambda _: "RUNNING" in text("run-status"))

        def logged_steps() -> list[int]:
            with (run.run_dir / "trainer_log.jsonl").open() as log:
                return [record["step"] for record in map(json.loads, log) if "loss" in record]

        wait_for(lambda: len(logged_steps()) > stopped_at + 1, timeout=240, what="steps after the resume")
        steps = logged_steps()
        assert steps == list(range(1, len(steps) + 1))  # continued after the checkpoint, not from step 1
        browser.find_element(By.ID, "stop").click()
        wait.until(lambda _: "STOPPED" in text("run-status"))

        type_into("field-method-max-steps", "4")
        type_into("field-seed", "7")
        wait.until(lambda _: "method.max_steps=4" in text("command") and "seed=7" in text("command"))
        browser.find_element(By.ID, "start").click()
        wait.until(lambda _: "seed=7" in text("start-status"))
        wait.until(lambda _: "FINISHED" in text("run-status") and "/ 4" in text("run-status"))

        tab("Runs")
        browser.find_element(By.ID, "runs-refresh").click()
        wait.until(lambda _: "FINISHED" in text("runs-table") and "KILLED" in text("runs-table"))
        for label in browser.find_elements(By.CSS_SELECTOR, "#runs-chosen label"):
            label.click()
        browser.find_element(By.ID, "runs-compare").click()
        wait.until(lambda _: "seed" in text("runs-params") and "method.max_steps" in text("runs-params"))
        assert "MLflow UI" in text("runs-links")
        shot("runs")

        tab("Chat")
        browser.find_element(By.ID, "chat-refresh").click()
        wait.until(lambda _: browser.find_element(By.CSS_SELECTOR, "#chat-run input").get_attribute("value"))
        browser.find_element(By.ID, "chat-load").click()
        wait.until(lambda _: text("chat-status").startswith("Loaded"))
        type_into("chat-message", "Count from 1 to 3.")
        browser.find_element(By.CSS_SELECTOR, "#chat-message textarea").send_keys(Keys.ENTER)
        wait.until(lambda _: len(browser.find_elements(By.CSS_SELECTOR, "#chatbot .bot")) >= 1)
        wait.until(lambda _: browser.find_elements(By.CSS_SELECTOR, "#chatbot .bot")[-1].text.strip())
        shot("chat")
    finally:
        shot("last")
        browser.quit()
        board.terminate()
        for leftover in processes.running(processes.find_runs(tmp_path)):
            os.kill(leftover.pid, signal.SIGKILL)
