"""The gradio page: one tab per kind of loaded model (super-resolution, MIDI, generate), wired to ``handlers``.

Every run event shares one gradio concurrency group of size one, so requests queue and one model runs at a
time (the device lock in ``handlers`` also holds for direct calls). A bad input becomes a ``gr.Error`` with the
command line's message in the page; the server goes on. API names (for ``gradio_client``): ``/super_resolve``,
``/preview_midi``, ``/render_midi``, ``/generate``.
"""
from __future__ import annotations

import functools
import typing as tp

import gradio as gr
import numpy as np

from . import handlers
from .handlers import AppError, LoadedModel, Workspace

RUN_GROUP = "model-run"  # the concurrency group of every event that runs a model
SR_MODES = ("upsample", "evaluate (the upload is a full-band reference)")
CSS = ".output-image img { object-fit: contain; }"


def _guarded(fn: tp.Callable) -> tp.Callable:
    """Errors become messages in the page (the command line's for bad input), never a dead server."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AppError, ValueError, OSError) as e:
            raise gr.Error(str(e), title="Error", print_exception=False) from e
        except Exception as e:  # a bug must not end the server either
            raise gr.Error(f"{type(e).__name__}: {e}", title="Internal error") from e

    return wrapper


def _progress(bar: gr.Progress) -> handlers.Progress:
    return lambda done, total, unit: bar((done, total), desc=f"{done}/{total} {unit}", unit=unit)


def _picker(entries: list[LoadedModel], elem_id: str) -> tuple[gr.Dropdown, tp.Callable[[str], LoadedModel]]:
    """A checkpoint dropdown (hidden when the tab has one model) and the lookup of its value."""
    by_label = {e.label: e for e in entries}
    dropdown = gr.Dropdown(list(by_label), value=entries[0].label, label="checkpoint", visible=len(entries) > 1,
                           elem_id=elem_id)

    def pick(label: str | None) -> LoadedModel:
        if label not in by_label:
            raise AppError(f"unknown checkpoint {label!r}; loaded: {', '.join(by_label)}")
        return by_label[label]

    return dropdown, pick


def _sr_tab(entries: list[LoadedModel], workspace: Workspace, average_power: np.ndarray | None) -> None:
    first = entries[0]
    with gr.Row():
        with gr.Column(scale=1):
            model, pick = _picker(entries, "sr-checkpoint")
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="low-resolution input "
                             "(any rate 4-48 kHz, mono or stereo)", elem_id="sr-input")
            mode = gr.Radio(list(SR_MODES), value=SR_MODES[0], label="mode", elem_id="sr-mode")
            cutoff = gr.Number(4000, label="evaluate: band-limit the reference at (Hz)", minimum=2000, maximum=20000)
            caption = gr.Textbox(label="caption", placeholder="what the audio is (empty: no text condition, s_t unused)")
            target = gr.Slider(0.0, 0.99, value=first.sampling.get("target_rolloff", 0.8), step=0.01,
                               label="target roll-off f_h (fraction of 22.05 kHz)")
            with gr.Row():
                s_a = gr.Slider(0.0, 5.0, value=1.4, step=0.05, label="s_a (acoustic guidance)")
                s_t = gr.Slider(0.0, 5.0, value=1.2, step=0.05, label="s_t (text guidance)")
            with gr.Row():
                steps = gr.Slider(1, 200, value=first.sampling.get("steps", 100), step=1, label="steps",
                                  elem_id="sr-steps")
                seed = gr.Number(0, precision=0, label="seed")
            lfr = gr.Checkbox(True, label="low-frequency replacement (LFR)")
            run = gr.Button("Run", variant="primary", elem_id="sr-run")
        with gr.Column(scale=2):
            with gr.Row():
                heard = gr.Audio(type="filepath", label="input at 44.1 kHz", interactive=False, elem_id="sr-heard")
                output = gr.Audio(type="filepath", label="output", interactive=False, elem_id="sr-output")
            image = gr.Image(type="filepath", label="spectrograms (same scale; dashed: detected input cutoff)",
                             interactive=False, elem_classes="output-image", elem_id="sr-spectrogram")
            summary = gr.Markdown(elem_id="sr-summary")
            metrics = gr.Dataframe(headers=["system", "LSD", "LSD-HF", "roll-off (kHz)"], label="evaluate: metrics",
                                   interactive=False)
            download = gr.File(label="download output WAV", interactive=False)

    @_guarded
    def run_sr(label, path, how, cutoff_hz, text, f_h, cfg_a, cfg_t, n_steps, seed_value, use_lfr,
               progress=gr.Progress()):
        entry = pick(label)
        common = dict(caption=text, target_rolloff=f_h, cfg_acoustic=cfg_a, cfg_text=cfg_t, steps=n_steps,
                      seed=seed_value, lfr=use_lfr, progress=_progress(progress))
        if how == SR_MODES[1]:
            result = handlers.evaluate(entry, path, cutoff_hz, workspace, average_power=average_power, **common)
            rows = [[m["system"], m["LSD"], m["LSD-HF"], m["roll-off (kHz)"]] for m in result.metrics]
        else:
            result = handlers.super_resolve(entry, path, workspace, **common)
            rows = []
        return (str(result.input_wav), str(result.output_wav), str(result.spectrogram_png), result.summary,
                rows, str(result.output_wav))

    run.click(run_sr, [model, audio, mode, cutoff, caption, target, s_a, s_t, steps, seed, lfr],
              [heard, output, image, summary, metrics, download], api_name="super_resolve",
              concurrency_limit=1, concurrency_id=RUN_GROUP)


def _midi_tab(entries: list[LoadedModel], workspace: Workspace) -> None:
    from saga_hsmad.inference.midi_to_audio import DEFAULTS

    sampling = entries[0].sampling
    with gr.Row():
        with gr.Column(scale=1):
            model, pick = _picker(entries, "midi-checkpoint")
            midi = gr.File(label="MIDI file (.mid, .midi)", file_types=[".mid", ".midi"], type="filepath",
                           elem_id="midi-input")
            style = gr.Textbox(sampling.get("style", ""), label="style text")
            with gr.Row():
                w_h = gr.Slider(0.0, 5.0, value=sampling.get("w_structure", DEFAULTS["w_structure"]), step=0.05,
                                label="w_H (structure guidance)")
                w_s = gr.Slider(0.0, 5.0, value=sampling.get("w_style", DEFAULTS["w_style"]), step=0.05,
                                label="w_S (style guidance)")
            with gr.Row():
                steps = gr.Slider(1, 200, value=sampling.get("steps", DEFAULTS["steps"]), step=1, label="steps")
                seed = gr.Number(0, precision=0, label="seed")
            with gr.Row():
                start = gr.Number(0, label="from (s)", minimum=0)
                end = gr.Number(None, label="to (s; empty: the end)", minimum=0)
            run = gr.Button("Run", variant="primary", elem_id="midi-run")
        with gr.Column(scale=2):
            roll = gr.Image(type="filepath", label="piano roll", interactive=False, elem_classes="output-image")
            info = gr.Markdown(elem_id="midi-info")
            output = gr.Audio(type="filepath", label="output", interactive=False, elem_id="midi-output")
            overlay = gr.Image(type="filepath", label="output spectrogram with the MIDI notes", interactive=False,
                               elem_classes="output-image")
            summary = gr.Markdown(elem_id="midi-summary")
            download = gr.File(label="download output WAV", interactive=False)

    @_guarded
    def preview(label, path):
        if not path:
            return None, ""
        png, line = handlers.preview_midi(pick(label), path, workspace)
        return str(png), line

    @_guarded
    def run_midi(label, path, text, wh, ws, n_steps, seed_value, t0, t1, progress=gr.Progress()):
        result = handlers.render_midi(pick(label), path, workspace, style=text, w_structure=wh, w_style=ws,
                                      steps=n_steps, seed=seed_value, start=t0 or 0.0, end=t1,
                                      progress=_progress(progress))
        return str(result.output_wav), str(result.plot_png), result.summary, str(result.output_wav)

    midi.change(preview, [model, midi], [roll, info], api_name="preview_midi")
    run.click(run_midi, [model, midi, style, w_h, w_s, steps, seed, start, end], [output, overlay, summary, download],
              api_name="render_midi", concurrency_limit=1, concurrency_id=RUN_GROUP)


def _generate_tab(entries: list[LoadedModel], workspace: Workspace) -> None:
    first = entries[0]
    with gr.Row():
        with gr.Column(scale=1):
            model, pick = _picker(entries, "generate-checkpoint")
            prompt = gr.Textbox(label="prompt")
            seconds = gr.Number(round(first.config["sample_size"] / first.sample_rate, 3), label="seconds",
                                minimum=0)
            with gr.Row():
                steps = gr.Slider(1, 200, value=50, step=1, label="steps")
                seed = gr.Number(0, precision=0, label="seed")
            cfg = gr.Slider(0.0, 10.0, value=1.0, step=0.1, label="cfg scale")
            run = gr.Button("Run", variant="primary", elem_id="generate-run")
        with gr.Column(scale=2):
            output = gr.Audio(type="filepath", label="output", interactive=False, elem_id="generate-output")
            image = gr.Image(type="filepath", label="spectrogram", interactive=False, elem_classes="output-image")
            summary = gr.Markdown(elem_id="generate-summary")
            download = gr.File(label="download output WAV", interactive=False)

    @_guarded
    def run_generate(label, text, secs, n_steps, seed_value, scale, progress=gr.Progress()):
        result = handlers.generate(pick(label), workspace, prompt=text, seconds=secs, steps=n_steps, seed=seed_value,
                                   cfg_scale=scale, progress=_progress(progress))
        return str(result.output_wav), str(result.spectrogram_png), result.summary, str(result.output_wav)

    run.click(run_generate, [model, prompt, seconds, steps, seed, cfg], [output, image, summary, download],
              api_name="generate", concurrency_limit=1, concurrency_id=RUN_GROUP)


TAB_TITLES = {"super_resolution": "Super-resolution", "midi": "MIDI to audio", "generate": "Generate"}


def build_page(models: tp.Sequence[LoadedModel], workspace: Workspace,
               average_power: np.ndarray | None = None) -> gr.Blocks:
    """The page for ``models`` (at least one); a tab per kind present, in ``handlers.KINDS`` order."""
    if not models:
        raise ValueError("build_page needs at least one loaded model")
    builders = {"super_resolution": lambda e: _sr_tab(e, workspace, average_power),
                "midi": lambda e: _midi_tab(e, workspace), "generate": lambda e: _generate_tab(e, workspace)}
    with gr.Blocks(title="saga-hsmad", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown("# saga-hsmad\n" + ", ".join(f"`{m.label}` ({TAB_TITLES[m.kind]})" for m in models)
                    + f" on {models[0].device}")
        with gr.Tabs():
            for kind in handlers.KINDS:
                entries = [m for m in models if m.kind == kind]
                if entries:
                    with gr.Tab(TAB_TITLES[kind], id=kind, elem_id=f"tab-{kind}"):
                        builders[kind](entries)
    return page
