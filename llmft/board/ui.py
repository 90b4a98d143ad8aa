"""The board's page (Gradio): Train, Runs, Chat, Evaluate / Export.

The handlers are thin: the logic lives in the sibling modules, which the tests exercise in-process.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
from omegaconf import OmegaConf

from llmft.board import checks, finished, history, processes
from llmft.board.form import EXPERIMENT, EXTRA, GROUPS, KNOBS, SECRETS, TrainForm, run_py_argv, shown_command
from llmft.board.preview import PROMPT, TRAINED, preview_rows
from llmft.board.progress import Pace, curves, log_tail, progress
from llmft.config.compose import CONF_DIR, compose
from llmft.config.errors import ReportedError
from llmft.config.paths import PROJECT_ROOT
from llmft.track.run_files import read_metrics

CSS = ".field-error {color: #b91c1c; font-size: 0.85em}"
FIELDS = [*GROUPS, EXPERIMENT, *KNOBS, EXTRA]
PLOT_COLUMNS = ["step", "value", "curve"]


@dataclass
class BoardSettings:
    root: Path  # where runs go (outputs/, multirun/) and are looked for: the board's working directory
    experiment: str  # the MLflow experiment the Runs tab shows
    tracking_uri: str | None


def group_options(group: str) -> list[str]:
    """The presets of a config group (conf/<group>/*.yaml); experiments come from experiments/experiment/."""
    directory = PROJECT_ROOT / "experiments" / "experiment" if group == EXPERIMENT else CONF_DIR / group
    return sorted(path.stem for path in directory.glob("*.yaml"))


def default_choices() -> dict[str, str | list[str]]:
    """The option conf/config.yaml picks in each group (the datasets: a list, named by their entries)."""
    cfg = compose(with_hydra=True)
    return {**{group: cfg.hydra.runtime.choices.get(group) for group in GROUPS}, "dataset": list(cfg.dataset)}


def element_id(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")


def plot_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=PLOT_COLUMNS)


def training_command(overrides: list[str], root: Path, slurm: bool) -> tuple[list[str], Path]:
    """(argv, run dir): outputs/<date>/<time> as hydra.run.dir, or with hardware=slurm a sweep of one
    (`run.py -m`, Hydra's submitit launcher) in multirun/<date>/<time>."""
    run_dir = processes.new_run_dir(root / ("multirun" if slurm else "outputs"))
    placement = f"hydra.sweep.dir={run_dir}" if slurm else f"hydra.run.dir={run_dir}"
    return run_py_argv(sys.executable, [*overrides, placement], multirun=slurm), run_dir


def read_form(values: list) -> TrainForm:
    """The Train tab's inputs, in FIELDS order (groups, experiment, knobs, extra)."""
    groups = dict(zip(GROUPS, values[: len(GROUPS)], strict=True))
    knob_values = values[len(GROUPS) + 1 : len(GROUPS) + 1 + len(KNOBS)]
    return TrainForm(
        groups=groups,
        experiment=values[len(GROUPS)] or "",
        knobs=dict(zip(KNOBS, knob_values, strict=True)),
        extra=values[-1] or "",
    )


class Board:
    """The handlers behind the page, over one settings object."""

    def __init__(self, settings: BoardSettings):
        self.settings = settings
        self._chat = threading.Lock()
        self.chat_session = None  # llmft.infer.chat.ChatSession of the loaded run
        self.pace = Pace()

    # --- Train ---------------------------------------------------------------------------------

    def check_form(self, *values) -> tuple:
        """Command preview, one message per field, knob placeholders from the composed config."""
        form = read_form(list(values))
        overrides = form.overrides()
        cfg, problems = checks.composed(overrides.all)
        messages = {**checks.problems_by_field(problems, FIELDS, overrides.extra), **overrides.refused}
        multirun = cfg is not None and cfg.hardware.scheduler == "slurm"
        command = shown_command(run_py_argv("python", overrides.all, multirun))
        if messages:
            command += "\n# not startable: see the messages next to the fields"
        errors = [
            gr.update(value=f"⚠ {messages[f]}" if f in messages else "", visible=f in messages)
            for f in FIELDS
        ]
        # the composed value shows in each empty knob (kept as it was while the config does not compose)
        placeholders = [
            gr.update(placeholder=str(OmegaConf.select(cfg, key))) if cfg is not None else gr.update()
            for key in KNOBS
        ]
        return (command, *errors, *placeholders)

    def start(self, allow_second: bool, *values_and_secrets) -> tuple[str, dict]:
        values, secrets = values_and_secrets[: len(FIELDS)], values_and_secrets[len(FIELDS) :]
        overrides = read_form(list(values)).overrides()
        cfg, problems = checks.composed(overrides.all)
        if overrides.refused or problems:
            return "⚠ Not started: fix the fields marked above.", gr.update()
        busy = processes.running(processes.find_runs(self.settings.root))
        if busy and not allow_second:
            return (
                f"⚠ Not started: {busy[0].run_dir} is still running. Tick 'allow a second run' to run both "
                "(they share the CPU/GPU).",
                gr.update(),
            )
        slurm = cfg.hardware.scheduler == "slurm"
        argv, run_dir = training_command(overrides.all, self.settings.root, slurm)
        run = processes.start(argv, run_dir, "train", dict(zip(SECRETS, secrets, strict=True)), slurm)
        return f"Started `{shown_command(argv)}`", gr.update(
            choices=self.train_runs(), value=str(run.run_dir)
        )

    def train_runs(self) -> list[str]:
        return [str(run.run_dir) for run in processes.find_runs(self.settings.root) if run.kind == "train"]

    def watched(self, run_dir: str | None) -> processes.BoardRun | None:
        """The chosen run, else the newest running one (a restarted board picks up where it was)."""
        runs = [run for run in processes.find_runs(self.settings.root) if run.kind == "train"]
        chosen = [run for run in runs if str(run.run_dir) == run_dir]
        return (chosen or processes.running(runs) or runs or [None])[0]

    def watch(self, run_dir: str | None) -> tuple:
        run = self.watched(run_dir)
        if run is None:
            return gr.update(), "No run yet.", _progress_html(0.0), plot_frame([]), "", ""
        state = progress(run.job_dir, self.pace)
        points = curves(run.job_dir)
        losses = [row for row in points if row["curve"] == "loss"]
        summary = (
            f"{len(losses)} points, last loss {losses[-1]['value']:.4f} at step {losses[-1]['step']}"
            if losses
            else ""
        )
        if not run.running:
            state.eta_s = None
        status = f"**{run.status}** · {state.describe()} · `{run.run_dir}`"
        # the choice is the user's (or Start's): a tick only fills it in when empty, never overwrites it
        chosen = {} if run_dir else {"value": str(run.run_dir)}
        return (
            gr.update(choices=self.train_runs(), **chosen),
            status,
            _progress_html(state.fraction),
            plot_frame(points),
            summary,
            log_tail(run.run_dir / processes.CONSOLE_FILE),
        )

    def stop(self, run_dir: str | None) -> str:
        run = self.watched(run_dir)
        try:
            return processes.stop(run) if run else "No run to stop."
        except processes.BoardError as error:
            return f"⚠ {error}"

    def preview(self, *values) -> list:
        cfg, problems = checks.composed(read_form(list(values)).overrides().all)
        if problems:
            return [("Fix the fields marked above first.", None)]
        segments: list = []
        for row in preview_rows(cfg):
            segments += [*row, ("\n\n", None)]
        return segments

    # --- Runs ----------------------------------------------------------------------------------

    def runs_table(self) -> tuple[pd.DataFrame, dict]:
        rows = history.table(history.experiment_runs(self.settings.experiment, self.settings.tracking_uri))
        choices = [(f"{row['run']} ({row['status']})", row["run_id"]) for row in rows]
        return pd.DataFrame(rows), gr.update(choices=choices, value=[])

    def compare(self, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
        if not run_ids:
            return plot_frame([]), pd.DataFrame(), "Select runs to compare."
        uri = self.settings.tracking_uri
        lines = []
        for run_id in run_ids:
            link, ui_command = history.ui_link(run_id, uri)
            lines.append(f"- [{run_id[:8]} in the MLflow UI]({link})")
        if ui_command:
            lines.append(f"\nStart that UI with `{ui_command}`")
        return (
            plot_frame(history.loss_curves(run_ids, uri)),
            pd.DataFrame(history.params_side_by_side(run_ids, uri)),
            "\n".join(lines),
        )

    def _one_run_dir(self, run_ids: list[str]) -> Path:
        if len(run_ids) != 1:
            raise processes.BoardError("Select exactly one run.")
        run_dir = history.run_dir_of(run_ids[0], self.settings.tracking_uri)
        if not run_dir or not Path(run_dir).is_dir():
            raise processes.BoardError("That run's directory is gone.")
        return Path(run_dir)

    def resume(self, run_ids: list[str], *secrets) -> str:
        try:
            run_dir = self._one_run_dir(run_ids)
            if not (run_dir / processes.RECORD_FILE).exists():
                raise processes.BoardError(f"{run_dir} was not started from the board: rerun its command.")
            run = processes.resume(processes.BoardRun.load(run_dir), dict(zip(SECRETS, secrets, strict=True)))
        except processes.BoardError as error:
            return f"⚠ {error}"
        return f"Resumed `{shown_command(run.argv)}` (watch it in the Train tab)."

    def delete(self, run_ids: list[str], confirmed: bool) -> str:
        if not confirmed:
            return "⚠ Tick 'yes, delete' first: the run's files cannot be recovered."
        try:
            run_dir = self._one_run_dir(run_ids)
            processes.delete_run_dir(run_dir, processes.find_runs(self.settings.root))
        except processes.BoardError as error:
            return f"⚠ {error}"
        history.forget_run(run_ids[0], self.settings.tracking_uri)
        return f"Deleted {run_dir} and its MLflow record."

    # --- Chat, Evaluate / Export ---------------------------------------------------------------

    def finished_runs(self) -> dict:
        runs = [
            str(run.run_dir)
            for run in processes.find_runs(self.settings.root)
            if run.kind == "train" and run.status == "FINISHED"
        ]
        return gr.update(choices=runs, value=runs[0] if runs else None)

    def load_chat(self, run_dir: str) -> tuple[str, list]:
        from llmft.infer.chat import ChatSession
        from llmft.infer.engine import SamplingParams

        if not run_dir:
            return "⚠ Choose a finished run.", []
        try:
            cfg, engine = finished.load_chat_engine(Path(run_dir))
        except (FileNotFoundError, ReportedError) as error:
            return f"⚠ {error}", []
        with self._chat:
            self.chat_session = ChatSession(engine, SamplingParams.from_config(cfg.generation))
        return f"Loaded `{run_dir}` ({engine.model_name}).", []

    def chat(self, message: str, chat_history: list, temperature: float, top_p: float, max_new_tokens: int):
        if self.chat_session is None:
            yield [*chat_history, {"role": "assistant", "content": "⚠ Load a run first."}], ""
            return
        with self._chat:
            session = self.chat_session
            session.params = session.params.replace(
                do_sample=temperature > 0,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=int(max_new_tokens),
            )
            reply = ""
            turns = [*chat_history, {"role": "user", "content": message}]
            for piece in session.reply(message):
                reply += piece
                yield [*turns, {"role": "assistant", "content": reply}], ""

    def clear_chat(self) -> list:
        if self.chat_session is not None:
            self.chat_session.clear()
        return []

    def run_task(self, run_dir: str, task: str) -> tuple[str, str]:
        if not run_dir:
            return "⚠ Choose a finished run.", gr.update()
        output_dir = processes.new_run_dir(Path(run_dir) / task)
        try:
            argv = run_py_argv(sys.executable, finished.task_overrides(Path(run_dir), task, output_dir))
        except FileNotFoundError as error:
            return f"⚠ {error}", gr.update()
        run = processes.start(argv, output_dir, task)
        return f"Started `{shown_command(argv)}`", str(run.run_dir)

    def task_result(self, output_dir: str | None) -> tuple[str, str]:
        if not output_dir or not (Path(output_dir) / processes.RECORD_FILE).exists():
            return "", ""
        run = processes.BoardRun.load(Path(output_dir))
        metrics = read_metrics(run.run_dir)
        exported = run.run_dir / "exported"
        status = f"**{run.status}** `{run.run_dir}`" + (
            f" · exported to `{exported}`" if exported.is_dir() else ""
        )
        shown = (
            json.dumps(metrics, indent=2) if metrics else log_tail(run.run_dir / processes.CONSOLE_FILE, 15)
        )
        return status, shown


def _progress_html(fraction: float) -> str:
    return f'<progress id="run-progress" max="1" value="{fraction:.4f}" style="width:100%"></progress>'


def build_page(board: Board) -> gr.Blocks:
    defaults = default_choices()
    with gr.Blocks(title="llmft board") as page:
        gr.Markdown(
            "# llmft board\nEvery action here is a plain `python run.py ...` command, shown before it runs."
        )
        with gr.Tab("Train"):
            inputs, errors = [], []
            with gr.Row():
                for group in GROUPS:
                    with gr.Column(min_width=150):
                        inputs.append(
                            gr.Dropdown(
                                group_options(group),
                                value=defaults[group],
                                label=group,
                                multiselect=group == "dataset",
                                allow_custom_value=True,
                                elem_id=f"field-{group}",
                            )
                        )
                        errors.append(gr.Markdown(elem_classes="field-error", elem_id=f"error-{group}"))
                with gr.Column(min_width=150):
                    inputs.append(
                        gr.Dropdown(
                            ["", *group_options(EXPERIMENT)],
                            value="",
                            label="+experiment",
                            elem_id="field-experiment",
                        )
                    )
                    errors.append(gr.Markdown(elem_classes="field-error", elem_id="error-experiment"))
            knob_boxes = []
            with gr.Row():
                for key, label in KNOBS.items():
                    with gr.Column(min_width=150):
                        box = gr.Textbox(label=label, elem_id=f"field-{element_id(key)}", max_lines=1)
                        knob_boxes.append(box)
                        inputs.append(box)
                        errors.append(
                            gr.Markdown(elem_classes="field-error", elem_id=f"error-{element_id(key)}")
                        )
            inputs.append(
                gr.Textbox(
                    label="extra overrides (key=value ...)",
                    elem_id="field-extra",
                    placeholder="method.warmup_steps=10",
                )
            )
            errors.append(gr.Markdown(elem_classes="field-error", elem_id="error-extra"))
            with gr.Accordion(
                "Secrets (passed to the run as environment variables, never saved)", open=False
            ):
                secrets = [
                    gr.Textbox(label=label, type="password", elem_id=f"secret-{name}")
                    for name, label in SECRETS.items()
                ]
            command = gr.Code(
                label="command",
                language="shell",
                interactive=False,
                wrap_lines=True,
                lines=2,
                max_lines=4,
                elem_id="command",
            )
            with gr.Row():
                allow_second = gr.Checkbox(
                    label="allow a second run at the same time", elem_id="allow-second"
                )
                start = gr.Button("Start", variant="primary", elem_id="start")
                stop = gr.Button("Stop (checkpoint, then end)", elem_id="stop")
                show_data = gr.Button("Preview data", elem_id="preview-data")
            started = gr.Markdown(elem_id="start-status")
            watching = gr.Dropdown(label="watching", choices=[], allow_custom_value=True, elem_id="watching")
            status = gr.Markdown(elem_id="run-status")
            bar = gr.HTML(_progress_html(0.0))
            plot = gr.LinePlot(
                plot_frame([]), x="step", y="value", color="curve", title="loss", elem_id="loss-plot"
            )
            plot_summary = gr.Markdown(elem_id="loss-summary")
            tail = gr.Textbox(label="log", lines=10, max_lines=10, autoscroll=True, elem_id="log-tail")
            data_preview = gr.HighlightedText(
                label="data preview (what the model sees; trained tokens marked)",
                color_map={TRAINED: "green", PROMPT: "gray"},
                elem_id="data-preview",
            )

            checked_outputs = [command, *errors, *knob_boxes]
            for element in inputs:
                element.change(board.check_form, inputs, checked_outputs, show_progress="hidden")
            page.load(board.check_form, inputs, checked_outputs)
            start.click(board.start, [allow_second, *inputs, *secrets], [started, watching])
            stop.click(board.stop, [watching], [started])
            show_data.click(board.preview, inputs, [data_preview])
            timer = gr.Timer(1.0)
            timer.tick(
                board.watch,
                [watching],
                [watching, status, bar, plot, plot_summary, tail],
                show_progress="hidden",
            )

        with gr.Tab("Runs"):
            refresh = gr.Button("Refresh", elem_id="runs-refresh")
            table = gr.Dataframe(
                interactive=False, label="runs (click a header to sort)", elem_id="runs-table"
            )
            chosen = gr.CheckboxGroup(label="select runs", elem_id="runs-chosen")
            with gr.Row():
                compare = gr.Button("Compare", elem_id="runs-compare")
                resume = gr.Button("Resume (one stopped run)", elem_id="runs-resume")
                confirm = gr.Checkbox(label="yes, delete", elem_id="runs-confirm")
                delete = gr.Button("Delete files", variant="stop", elem_id="runs-delete")
            runs_message = gr.Markdown(elem_id="runs-message")
            compare_plot = gr.LinePlot(
                plot_frame([]), x="step", y="value", color="curve", title="loss", elem_id="compare-plot"
            )
            params = gr.Dataframe(interactive=False, label="params that differ", elem_id="runs-params")
            links = gr.Markdown(elem_id="runs-links")
            refresh.click(board.runs_table, None, [table, chosen])
            compare.click(board.compare, [chosen], [compare_plot, params, links])
            resume.click(board.resume, [chosen, *secrets], [runs_message])
            delete.click(board.delete, [chosen, confirm], [runs_message]).then(
                board.runs_table, None, [table, chosen]
            )

        with gr.Tab("Chat"):
            with gr.Row():
                chat_run = gr.Dropdown(label="finished run", choices=[], elem_id="chat-run")
                chat_refresh = gr.Button("Refresh", elem_id="chat-refresh")
                load = gr.Button("Load", elem_id="chat-load")
            chat_status = gr.Markdown(elem_id="chat-status")
            with gr.Row():
                temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="temperature (0 = greedy)")
                top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="top_p")
                max_new_tokens = gr.Slider(1, 1024, value=32, step=1, label="max new tokens")
            chatbot = gr.Chatbot(elem_id="chatbot", height=300)
            message = gr.Textbox(label="message", elem_id="chat-message")
            clear = gr.Button("Clear", elem_id="chat-clear")
            chat_refresh.click(board.finished_runs, None, [chat_run])
            load.click(board.load_chat, [chat_run], [chat_status, chatbot])
            message.submit(
                board.chat, [message, chatbot, temperature, top_p, max_new_tokens], [chatbot, message]
            )
            clear.click(board.clear_chat, None, [chatbot])

        with gr.Tab("Evaluate / Export"):
            with gr.Row():
                task_run = gr.Dropdown(label="finished run", choices=[], elem_id="task-run")
                task_refresh = gr.Button("Refresh", elem_id="task-refresh")
                task = gr.Radio(list(finished.TASKS), value="eval", label="task", elem_id="task-name")
                go = gr.Button("Run", variant="primary", elem_id="task-go")
            task_message = gr.Markdown(elem_id="task-message")
            task_dir = gr.State()
            task_status = gr.Markdown(elem_id="task-status")
            task_output = gr.Code(label="metrics", language="json", elem_id="task-metrics")
            task_refresh.click(board.finished_runs, None, [task_run])
            go.click(board.run_task, [task_run, task], [task_message, task_dir])
            timer.tick(board.task_result, [task_dir], [task_status, task_output], show_progress="hidden")
    return page
