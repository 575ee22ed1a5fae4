"""Serve the web page for one or more checkpoints; each model's kind picks its tab as ``sample.py`` picks its mode.

    python -m saga_hsmad.app --ckpt runs/sr/export.safetensors [--ckpt runs/hsmad/export.safetensors ...] \
        [--host 127.0.0.1] [--port 7860] [--device cpu]

The server binds to localhost unless ``--host`` says otherwise, sends no analytics and loads nothing from the
internet (fonts and scripts come from the gradio package). Uploads and outputs live in a temporary folder that
is removed when the server stops; files older than an hour are removed while it runs, and an upload larger than
``--max-upload-mb`` is refused.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from saga_hsmad.inference.flags import OneLineParser, bounded

    p = OneLineParser(prog="python -m saga_hsmad.app", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True, help="training or exported checkpoint; repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=7860, help="port (default 7860)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-ema", action="store_true", help="use the online weights even if EMA weights exist")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow a checkpoint that needs full unpickling (can run code: trusted files only)")
    p.add_argument("--max-upload-mb", type=bounded(float, 0.0, 10_000.0, low_open=True), default=200.0,
                   help="largest upload accepted, in MB (default 200)")
    p.add_argument("--train-dataset-config", default=None,
                   help="the training data of a super-resolution model: adds the noise-fill baseline to 'evaluate'")
    return p


def offline_environment(upload_dir: Path) -> None:
    """Settings read by gradio at import: no analytics, uploads under ``upload_dir``, localhost never proxied."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_TEMP_DIR"] = str(upload_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    no_proxy = [h for h in os.environ.get("NO_PROXY", "").split(",") if h]
    os.environ["NO_PROXY"] = ",".join(dict.fromkeys(no_proxy + ["localhost", "127.0.0.1"]))


def main(argv=None) -> int:
    """Serve until Ctrl-C or SIGTERM, which close the server and remove the temporary folder."""
    from saga_hsmad.quiet import silence_third_party_noise

    silence_third_party_noise()  # before the imports that print them
    from saga_hsmad.inference.interrupts import EXIT_SIGINT, EXIT_SIGTERM, Terminated, sigterm_raises

    try:
        with sigterm_raises():
            return serve(argv)
    except KeyboardInterrupt as e:  # during start-up; once serving, gradio closes on it and serve returns
        print("interrupted: the server's temporary files were removed", file=sys.stderr)
        return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT


def serve(argv=None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="saga_hsmad_app_"))
    offline_environment(root / "uploads")

    import torch

    from saga_hsmad.checkpoints import CheckpointError

    from .handlers import Workspace, load_models

    workspace = Workspace(root / "outputs")
    try:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            models = load_models(args.ckpt, device, use_ema=not args.no_ema, trust=args.trust_checkpoint)
        except (CheckpointError, FileNotFoundError) as e:
            print(f"ERROR {e}", file=sys.stderr)
            return 1
        for m in models:
            print(f"{m.path}: {m.kind} on {device}")
        average_power = None
        if args.train_dataset_config:
            from saga_hsmad.evaluation.baselines import average_power_spectrum
            from saga_hsmad.evaluation.sr_eval import dataset_files

            sr_model = next((m for m in models if m.kind == "super_resolution"), None)
            if sr_model is None:
                print("ERROR --train-dataset-config: no super-resolution checkpoint was given", file=sys.stderr)
                return 2
            files = dataset_files(args.train_dataset_config, sr_model.config)[0]
            average_power = average_power_spectrum(files, sr_model.sample_rate)
            print(f"noise-fill baseline: average spectrum of {len(files)} file(s) of {args.train_dataset_config}")

        import gradio as gr

        from .page import CSS, build_page

        page = build_page(models, workspace, average_power)
        page.queue(default_concurrency_limit=1)
        page.launch(server_name=args.host, server_port=args.port, max_file_size=int(args.max_upload_mb * 1_000_000),
                    ssr_mode=False, show_error=True, footer_links=[], theme=gr.themes.Default(), css=CSS)
        return 0
    finally:
        workspace.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
