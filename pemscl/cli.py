"""The training command line: `python -m pemscl.train`, one GPU, N GPUs or a CPU.

    python -m pemscl.train --preset cpu --loss pemscl-ns --epochs 8
    python -m pemscl.train --preset cpu --loss atl --print-config
    python -m pemscl.train --import mylosses --loss my-loss --loss-params '{"temperature": 2.0}'
    torchrun --standalone --nproc_per_node=4 -m pemscl.train --preset paper-redocred --record

Every option is generated from the TrainConfig and LossSpec dataclasses, so a field added
there is an option here with no edit: `--max-train-docs 40` sets `max_train_docs`,
`--loss-tau 0.5` sets `loss.tau`. The config is resolved exactly as
`preset(NAME, loss=loss_spec(LOSS), **fields, **loss_fields)` would build it (same key,
same run folder), so a command-line run and a notebook run of one config are one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

from . import distributed, lossspec, runs, train
from .config import PRESETS, TrainConfig, preset
from .lossspec import LossSpec

NONE_WORDS = ("none", "null")  # what the user types for a None-able field's None
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# options of the command itself, never config fields
OWN = ("preset", "loss", "root", "force", "no_progress", "imports", "print_config", "record")


# --------------------------------------------------------------------------- field types -> parsers
def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in TRUE_WORDS:
        return True
    if t in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parse_json_dict(text: str) -> dict:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return v


def _scalar(tp) -> Callable[[str], Any]:
    if tp is bool:
        return _parse_bool
    if tp in (int, float, str):
        return tp
    raise TypeError(f"no command-line form for type {tp!r}")


def field_parser(tp) -> tuple[Callable[[str], Any], str]:
    """(text -> value, metavar) for a dataclass field's resolved type annotation."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner, meta = field_parser(next(a for a in args if a is not type(None)))

        def none_able(text: str):
            return None if text.strip().lower() in NONE_WORDS else inner(text)

        return none_able, f"{meta}|none"
    if origin is tuple:
        item = _scalar(args[0])
        # "a,b" -> ("a", "b"); "" -> () (a tuple field emptied, e.g. --track "")
        return (lambda text: tuple(item(x.strip()) for x in text.split(",") if x.strip())), "A,B,..."
    if origin is dict:
        return _parse_json_dict, "JSON"
    if tp is bool:
        return _parse_bool, "true|false"
    return _scalar(tp), tp.__name__.upper()


def _config_fields(cls) -> list[tuple[str, Any, Any]]:
    """(name, resolved type, default) of each field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    inst = cls()
    return [(f.name, hints[f.name], getattr(inst, f.name)) for f in dataclasses.fields(cls)]


def _comment(cls, name: str) -> str:
    """The `# ...` comment on a field's line in its class source: the option's help."""
    try:
        src = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return ""
    for line in src:
        stripped = line.strip()
        if stripped.startswith(f"{name}:") and "#" in stripped:
            return stripped.split("#", 1)[1].strip().replace("%", "%%")  # argparse formats help with %
    return ""


# --------------------------------------------------------------------------- the parser
def _epilog() -> str:
    lines = ["presets (--preset):"]
    for name in sorted(PRESETS):
        c = PRESETS[name]()
        lines.append(f"  {name:24s} {c.encoder} on {c.regime}, {c.epochs} epochs, batch {c.batch_size}, "
                     f"loss {c.loss.kind}")
    lines.append("losses (--loss): " + ", ".join(sorted(lossspec.LOSS_PRESETS)))
    lines.append("registered loss kinds (--loss-kind): " + ", ".join(lossspec.registered_losses()))
    lines.append("A user loss: --import MODULE (a module or .py file calling pemscl.losses.register_loss) "
                 "before --loss NAME.")
    lines.append("Several GPUs: torchrun --standalone --nproc_per_node=N -m pemscl.train ...")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m pemscl.train`, its config options generated from TrainConfig
    and LossSpec. Options that are not given keep the preset's values (argparse.SUPPRESS)."""
    ap = argparse.ArgumentParser(
        prog="python -m pemscl.train", description="Train (or reuse, or resume) one run of a config.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="starting config (default: cpu)")
    ap.add_argument("--loss", metavar="NAME", help="a loss preset: loss_spec(NAME); see the list below")
    ap.add_argument("--root", type=Path, help="runs folder (default: $PEMSCL_RUNS or <repo>/runs)")
    ap.add_argument("--force", action="store_true", help="retrain even if a complete run of this config exists")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                    help="import a module (or .py file) first, e.g. one that registers a loss; repeatable")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and its key, then exit")
    ap.add_argument("--record", action="store_true",
                    help="merge the finished run into results/runs.jsonl (default: off, ad-hoc runs stay out)")

    cfg_group = ap.add_argument_group("config (TrainConfig fields; default: the preset's value)")
    for name, tp, default in _config_fields(TrainConfig):
        if name == "loss":
            continue  # --loss NAME and the --loss-* options below
        parse, meta = field_parser(tp)
        cfg_group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=parse, metavar=meta,
                               default=argparse.SUPPRESS, help=_comment(TrainConfig, name) or None)
    loss_group = ap.add_argument_group("loss (LossSpec fields, applied after --loss)")
    for name, tp, default in _config_fields(LossSpec):
        parse, meta = field_parser(tp)
        loss_group.add_argument(f"--loss-{name.replace('_', '-')}", dest=f"loss_{name}", type=parse, metavar=meta,
                                default=argparse.SUPPRESS, help=_comment(LossSpec, name) or None)
    return ap


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config the parsed options describe: preset, then --loss, then field overrides."""
    overrides = {k: v for k, v in vars(args).items() if k not in OWN}
    # a run trained from the command line gets the precision this machine measures fastest unless
    # --precision says otherwise (the cpu preset pins bf16 only to keep its recorded runs' keys;
    # where bf16 pays, "auto" is bf16 and the key is the same)
    overrides.setdefault("precision", "auto")
    if args.loss is not None:
        overrides["loss"] = lossspec.loss_spec(args.loss)
    return preset(args.preset, **overrides)


# --------------------------------------------------------------------------- --import
def import_user_module(spec: str) -> types.ModuleType:
    """Import a module by dotted name, or a .py file by path (registered under its stem)."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--import {spec}: no such file")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        mod_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _preimport(argv: Sequence[str]) -> None:
    """Run the --import modules before the full parser is built, so a user's losses are listed
    in --help and accepted by --loss."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    for name in known.imports:
        import_user_module(name)


# --------------------------------------------------------------------------- main
def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    """(the parsed options, the resolved config); errors exit like argparse's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _preimport(argv)
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (ValueError, TypeError) as e:  # unknown loss preset, bad field value
        ap.error(str(e))
    return args, cfg


def describe(cfg: TrainConfig) -> dict:
    """What --print-config prints: the config, its key and its run folder's name."""
    return {"key": cfg.key(), "folder": cfg.folder_name(), "config": dataclasses.asdict(cfg)}


def summary(run) -> str:
    """The lines printed at the end of a run: its folder and its dev / test F1."""
    lines = [f"run: {run.dir}"]
    for split in ("dev", "dev_gold", "test"):
        rep = run.scores.get(split) or {}
        if "f1" in rep:
            lines.append(f"{split} F1 {100 * rep['f1']:.2f}  Ign F1 {100 * rep.get('ign_f1', float('nan')):.2f}")
    lines.append(f"best epoch {run.scores.get('best_epoch')} of {run.scores.get('epochs_run')}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None):
    """Entry point of `python -m pemscl.train`; returns the Run (None after --print-config).

    Under torchrun every rank runs this; rank 0 alone prints and writes."""
    args, cfg = parse(argv)
    if args.print_config:
        if os.environ.get("RANK", "0") == "0":  # once, also under torchrun
            print(json.dumps(describe(cfg), indent=1, default=str))
        return None
    dist = distributed.init()
    try:
        run = train.train(cfg, root=args.root, force=args.force, progress=not args.no_progress, dist=dist)
        if dist.is_main:
            print(summary(run))
            if args.record:
                print(f"recorded in {runs.export_runs([run])}")
        dist.barrier()
    finally:
        distributed.shutdown(dist)
    return run
