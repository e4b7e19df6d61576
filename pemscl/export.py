"""Export a trained run as a self-contained folder: weights, tokenizer, relation set and model card.

    python -m pemscl.export runs/redocred-mini-pemscl-<key> exported/pemscl-minilm
    python -m pemscl.predict exported/pemscl-minilm my_docs.json --out my_preds.json

    from pemscl import train
    model, cfg = train.load("exported/pemscl-minilm")     # a run folder works the same way

A run folder holds only the trained parameters (model.pt, torch tensors) and names its encoder
("minilm", "roberta-large", a local folder), so it needs this project's data, runs and
encoders to be used. The exported folder needs none of them and no pickle: safetensors and JSON.

    pemscl_export.json  the marker: format version, pemscl version, config key, decision rule
    encoder/            the encoder with the run's fine-tuned layers merged in, and its tokenizer
                        (Hugging Face save_pretrained: config.json, model.safetensors, tokenizer files)
    head.safetensors    every DocREModel parameter outside the encoder (extractors, classifier)
    model_config.json   ModelConfig's fields; "encoder" is relative to the exported folder
    rel2id.json         the relation set the output columns stand for (column 0: no relation)
    config.json         the TrainConfig the run was trained with (its key names the run)
    scores.json         the run's dev / test scores, per-document counts and decision threshold
    history.json        the run's per-epoch curve
    README.md           the model card: data, regime, scores with intervals, command, licences

Options: --push-to-hub REPO uploads the folder (needs huggingface_hub); --force replaces an
earlier export in OUT_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel
from transformers.utils import logging as hf_logging

from . import __version__
from . import data as D
from . import layout as L
from . import stats
from . import tiny
from .config import PRESETS, TrainConfig, config_from_dict
from .features import load_tokenizer, marker_ids
from .fmt import pct
from .layout import ENCODER_DIR, MARKER, checkpoint_path, is_export
from .lossspec import LossSpec
from .model import DocREModel, ModelConfig, checkpoint_classes, resolve_encoder
from .utils import atomic_write_json, atomic_write_text, read_json, resolve_device

FORMAT = "pemscl-export"
FORMAT_VERSION = 1  # bump when the layout changes; a loader refuses versions it does not know
HEAD_FILE = "head.safetensors"
MODEL_CONFIG = "model_config.json"
REL2ID = "rel2id.json"
CARD = "README.md"
COPIED = (L.CONFIG, L.SCORES, L.HISTORY)  # from the run folder, unchanged
EXPORT_FILES = (ENCODER_DIR, HEAD_FILE, MODEL_CONFIG, REL2ID, *COPIED)

# what a run folder must hold to be exported, and what it means when one is missing
RUN_FILES = {
    L.DONE: "the run did not finish: train it to the end first",
    L.CONFIG: "the folder is not a run folder",
    L.SCORES: "the run did not finish",
    L.HISTORY: "the run did not finish",
    L.MODEL_FILE: "it was trained with save_model=False, or copied without its weights: retrain it with "
                "save_model=True",
}

# Licences of the pretrained encoders the presets name (their Hugging Face model cards).
ENCODERS = {
    "minilm": ("sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0", "apache-2.0"),
    "roberta-large": ("FacebookAI/roberta-large", "MIT", "mit"),
    "microsoft/deberta-large": ("microsoft/deberta-large", "MIT", "mit"),
    "microsoft/deberta-v2-xlarge": ("microsoft/deberta-v2-xlarge", "MIT", "mit"),
}
DOCRED = "DocRED (thunlp/DocRED, MIT licence)"
REDOCRED = "Re-DocRED (tonytan48/Re-DocRED, MIT licence; DocRED's documents with revised labels)"
# the data each built-in regime trains and scores on (see pemscl.data.load_regime)
DATA = {
    "redocred-mini": ("Re-DocRED dev split by title hash into 400 training / 100 dev documents; test: Re-DocRED "
                      "test. Gold labels throughout.", [REDOCRED, DOCRED]),
    "oog-mini": ("training: 761 DocRED train documents (original labels); dev: 138 DocRED dev documents "
                 "(original labels); test: Re-DocRED test (gold labels).", [DOCRED, REDOCRED]),
    "ogg-mini": ("training: 761 DocRED train documents (original labels); dev: the same 138 documents with "
                 "Re-DocRED's gold labels; test: Re-DocRED test (gold labels).", [DOCRED, REDOCRED]),
    "redocred": ("Re-DocRED train / dev / test, gold labels.", [REDOCRED, DOCRED]),
    "docred": ("DocRED annotated train / dev, original labels.", [DOCRED]),
    "oog": ("training: DocRED train (original labels); dev: DocRED dev documents in Re-DocRED dev (original "
            "labels); test: Re-DocRED test (gold labels).", [DOCRED, REDOCRED]),
    "ogg": ("training: DocRED train (original labels); dev: Re-DocRED dev (gold labels); test: Re-DocRED test "
            "(gold labels).", [DOCRED, REDOCRED]),
    "cdr": ("BC5CDR chemical-induced disease relations in DocRED format (tri154/DocReDataParse).",
            ["BC5CDR (BioCreative V CDR corpus): its licence is the corpus's own terms; check them before "
             "sharing this model"]),
}


class ExportError(Exception):
    """A problem with the command's inputs (printed as one line, exit status 2)."""


# --------------------------------------------------------------------------- recognising folders
def check_run(run_dir: str | Path) -> Path:
    """The run folder, if it holds everything export needs; else ExportError naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    if is_export(run_dir):
        raise ExportError(f"{run_dir} is an exported folder already, not a run folder")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        why = "; ".join(f"{name}: {RUN_FILES[name]}" for name in missing)
        raise ExportError(f"{run_dir} is not a complete run folder: missing {', '.join(missing)} ({why})")
    return run_dir


def check_export(folder: str | Path) -> dict:
    """The manifest of an exported folder, after checking it holds every file it needs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such folder")
    if not is_export(folder):
        raise ExportError(f"{folder} is not an exported folder (no {MARKER}); export a run with "
                          "`python -m pemscl.export RUN_DIR OUT_DIR`")
    try:
        manifest = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{folder / MARKER}: unreadable ({e})") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("format_version"), int):
        raise ExportError(f"{folder / MARKER} is not a pemscl export manifest")
    if manifest["format_version"] > FORMAT_VERSION:
        raise ExportError(f"{folder} was exported in format {manifest['format_version']} by pemscl "
                          f"{manifest.get('pemscl_version')}; this pemscl reads up to {FORMAT_VERSION}: upgrade it")
    missing = [name for name in EXPORT_FILES if not (folder / name).exists()]
    missing += [f"{ENCODER_DIR}/{n}" for n in ("config.json", "model.safetensors", "tokenizer_config.json")
                if (folder / ENCODER_DIR).is_dir() and not (folder / ENCODER_DIR / n).is_file()]
    if missing:
        raise ExportError(f"{folder} is an incomplete export: missing {', '.join(missing)}; export the run again")
    return manifest


def load_config(path: str | Path):
    """The TrainConfig of a run folder or an exported folder (both keep it in config.json)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ExportError(f"{path} is neither a run folder nor an exported folder (no config.json)")
    return config_from_dict(read_json(path / "config.json"))


# --------------------------------------------------------------------------- the model of a run
def _encoder_path(cfg, run_dir: Path) -> str:
    """The folder (or Hugging Face id) the run's encoder was loaded from when it trained.

    A dry run's config names the real encoder ("roberta-large") but trained a tiny random-init
    stand-in of its family, found only under the dry run's folder (pemscl.dryrun): it is used
    when that dry run is active or the run still lies in <dry run>/runs/; otherwise export says so
    instead of fetching the real model."""
    if cfg.dry_run:
        if tiny.dry_run_folder():
            return resolve_encoder(cfg.encoder)
        folder = run_dir.resolve().parent.parent / "encoders" / tiny.encoder_family(cfg.encoder)
        if tiny.is_complete(folder):
            return str(folder)
        raise ExportError(f"{run_dir} is a dry run: it trained a tiny random-init stand-in for {cfg.encoder}, "
                          f"which is not in {folder.parent}; export it with ${tiny.DRY_RUN_ENV} set to its dry-run folder")
    if tiny.dry_run_folder():
        raise ExportError(f"{run_dir} is a real run but ${tiny.DRY_RUN_ENV} is set (it would swap the encoder for a "
                          "tiny stand-in): unset it to export")
    return resolve_encoder(cfg.encoder)


def _run_model(run_dir: Path, cfg):
    """The run's model on the CPU: its encoder with the trained parameters of model.pt merged in
    (as train.load builds it), and the relation set and threshold the run decided with."""
    state = torch.load(checkpoint_path(run_dir), map_location="cpu", weights_only=True)
    n_classes = checkpoint_classes(state)
    model = DocREModel(ModelConfig(encoder=_encoder_path(cfg, run_dir), emb_size=cfg.emb_size,
                                   block_size=cfg.block_size, attention=cfg.attention,
                                   **({"num_classes": n_classes} if n_classes else {})))
    unknown = set(state) - set(model.state_dict())
    if unknown:
        raise ExportError(f"{checkpoint_path(run_dir)} has parameters the model lacks: {sorted(unknown)[:5]}")
    model.load_state_dict(state, strict=False)
    model.eval()
    rel_path = run_dir / REL2ID
    rel2id = read_json(rel_path) if rel_path.exists() else D.regime_rel2id(cfg.regime)
    if len(rel2id) != model.config.num_classes:
        raise ExportError(f"{run_dir}: the relation set has {len(rel2id)} classes, the model "
                          f"{model.config.num_classes}")
    return model, {r: int(i) for r, i in rel2id.items()}


def run_key(run_dir: Path, cfg) -> str:
    """The run's config key: its folder name ends in it (config.folder_name). Read from there, not
    recomputed, since a config with precision "auto" hashes what *this* machine would pick."""
    tail = run_dir.name.rsplit("-", 1)[-1]
    return tail if len(tail) == 12 and all(c in "0123456789abcdef" for c in tail) else cfg.key()


def head_state(model) -> dict:
    """Every parameter and buffer of the model outside the encoder (plm.*), contiguous on the CPU."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if not k.startswith("plm.")}


# --------------------------------------------------------------------------- export
def export_run(run_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write the self-contained folder of the run in `run_dir` to `out_dir` (see the module doc).

    The folder is built beside `out_dir` and moved into place whole, the marker written last, so
    an interrupted export never leaves a folder that looks complete. An existing `out_dir` is
    replaced only with force and only when it is an earlier export or empty."""

    run_dir, out_dir = check_run(run_dir), Path(out_dir)
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() in out_dir.resolve().parents:
        raise ExportError(f"{out_dir}: the export must go outside the run folder {run_dir}")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()):
            if not is_export(out_dir):
                raise ExportError(f"{out_dir} exists and is not an earlier export: choose another folder")
            if not force:
                raise ExportError(f"{out_dir} holds an earlier export: pass --force to replace it")
    cfg = load_config(run_dir)
    scores = read_json(run_dir / "scores.json")
    model, rel2id = _run_model(run_dir, cfg)
    tokenizer = load_tokenizer(model.config.encoder)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a sibling made with mkdir, not mkdtemp: the folder gets the umask's permissions, not 0700
    tmp = out_dir.parent / f".{out_dir.name}.exporting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export of this pid that was killed
    tmp.mkdir()
    try:
        # the encoder as Hugging Face saves it (safetensors), fine-tuned layers included, with its
        # tokenizer beside it: ModelConfig.encoder names one folder for both, as for any checkpoint
        model.plm.save_pretrained(tmp / ENCODER_DIR)
        tokenizer.save_pretrained(tmp / ENCODER_DIR)
        # the features code reads the tokenizer's own ids for the "*" marker: the saved tokenizer
        # must give the same ones, or every mention would be read at another token
        marks = marker_ids(tokenizer)
        if marker_ids(load_tokenizer(tmp / ENCODER_DIR)) != marks:
            raise ExportError(f"the saved tokenizer of {model.config.encoder} maps the marker '*' to other ids")
        save_file(head_state(model), str(tmp / HEAD_FILE), metadata={"format": "pt"})
        atomic_write_json(tmp / MODEL_CONFIG, {**dataclasses.asdict(model.config), "encoder": ENCODER_DIR})
        atomic_write_json(tmp / REL2ID, rel2id)
        for name in COPIED:
            shutil.copy2(run_dir / name, tmp / name)
        atomic_write_text(tmp / CARD, model_card(cfg, scores, rel2id, run_name=run_dir.name,
                                                 key=run_key(run_dir, cfg)))
        atomic_write_json(tmp / MARKER, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "pemscl_version": __version__,
            "config_key": run_key(run_dir, cfg), "run": run_dir.name,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "encoder": {"trained_from": cfg.encoder, "model_type": model.model_type, "folder": ENCODER_DIR},
            "num_classes": model.config.num_classes, "marker_ids": marks,
            # the decision rule predict applies: a relation beats the pair's NA logit, or (BCE-style
            # losses) its probability beats the threshold tuned on dev
            "threshold": scores.get("threshold"), "top_k": cfg.top_k, "dry_run": cfg.dry_run})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- load
@contextlib.contextmanager
def _quiet_transformers():
    """transformers' load report lists the pooler as newly initialised (ATLOP never uses it, so it
    is not exported); load_export checks the missing keys itself instead."""
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def load_encoder_folder(folder: str | Path, attention: str = "fast"):
    """The exported encoder from safetensors only (never a pickle), in fp32, without its pooler;
    any missing weight other than the pooler's is an error."""
    impl = "sdpa" if attention == "fast" else "eager"
    kw = dict(dtype=torch.float32, use_safetensors=True, local_files_only=True, output_loading_info=True)
    with _quiet_transformers():
        try:
            plm, info = AutoModel.from_pretrained(str(folder), attn_implementation=impl, **kw)
        except (ValueError, ImportError):  # no SDPA for this class (DeBERTa): eager, as model.load_encoder
            plm, info = AutoModel.from_pretrained(str(folder), attn_implementation="eager", **kw)
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith("pooler.")]
    if missing:
        raise ExportError(f"{folder}: the encoder's weights lack {sorted(missing)[:5]}; export the run again")
    if getattr(plm, "pooler", None) is not None:
        plm.pooler = None  # as model.load_encoder: ATLOP never uses it
    return plm


def load_export(folder: str | Path, device: str = "auto"):
    """(model, TrainConfig) of an exported folder, from safetensors and JSON alone: no run folder,
    no data folder, no pickle. The model carries the relation set (`rel2id`) and the decision
    threshold (`threshold`) as train.load attaches them for a run."""
    folder = Path(folder)
    manifest = check_export(folder)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    mc = ModelConfig(**{k: v for k, v in read_json(folder / MODEL_CONFIG).items() if k in fields})
    encoder = (folder / mc.encoder).resolve()  # relative to the folder, so the folder can move
    mc = dataclasses.replace(mc, encoder=str(encoder))
    model = DocREModel(mc, plm=load_encoder_folder(encoder, mc.attention))
    head = load_file(str(folder / HEAD_FILE))
    expected = set(head_state(model))
    if set(head) != expected:
        raise ExportError(f"{folder / HEAD_FILE} does not fit the model: missing {sorted(expected - set(head))[:5]}, "
                          f"unexpected {sorted(set(head) - expected)[:5]}")
    model.load_state_dict(head, strict=False)
    model.to(resolve_device(device)).eval()
    model.threshold = read_json(folder / "scores.json").get("threshold", manifest.get("threshold"))
    model.rel2id = {r: int(i) for r, i in read_json(folder / REL2ID).items()}
    if len(model.rel2id) != mc.num_classes:
        raise ExportError(f"{folder / REL2ID} has {len(model.rel2id)} classes, the model {mc.num_classes}")
    return model, load_config(folder)


# --------------------------------------------------------------------------- the model card
def train_command(cfg) -> str:
    """A `python -m pemscl.train` command that builds exactly `cfg` (same key, same run folder):
    the preset needing the fewest options, then every field that differs from it."""
    best = min(((name, _options(cfg, PRESETS[name]())) for name in sorted(PRESETS)), key=lambda x: len(x[1]))
    return shlex.join(["python", "-m", "pemscl.train", "--preset", best[0], *best[1]])


def _options(cfg, base) -> list[str]:
    out = []
    for f in dataclasses.fields(TrainConfig):
        v = getattr(cfg, f.name)
        # the command line's precision is "auto" unless given (cli.config_from_args), whatever the preset says
        differs = v != "auto" if f.name == "precision" else v != getattr(base, f.name)
        if f.name != "loss" and differs:
            out += [f"--{f.name.replace('_', '-')}", _option_text(v)]
    for f in dataclasses.fields(LossSpec):
        v = getattr(cfg.loss, f.name)
        if v != getattr(base.loss, f.name):
            out += [f"--loss-{f.name.replace('_', '-')}", _option_text(v)]
    return out


def _option_text(v: Any) -> str:
    """A value as cli's field parsers read it back."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return repr(v) if isinstance(v, float) else str(v)


def score_intervals(scores: dict, split: str, metrics: Sequence[str] = ("f1", "ign_f1")) -> dict[str, tuple]:
    """metric -> (score, 2.5th, 97.5th percentile) of `split` from its per-document counts: one run,
    so the interval covers the sampling of documents, not training randomness (pemscl.stats)."""
    counts = (scores.get("doc_counts") or {}).get(split)
    if not counts:
        return {}
    out = {}
    for m in metrics:
        res = stats.mean_bootstrap([counts], metric=m)
        out[m] = (res.diff, res.ci_low, res.ci_high)
    return out


def _pct(x: Any) -> str:
    return pct(x if isinstance(x, (int, float)) else None, digits=2)  # a score the run may not have


def _scores_table(scores: dict) -> list[str]:
    rows = ["| split | documents | precision | recall | F1 (95% interval) | Ign F1 (95% interval) |",
            "|---|---|---|---|---|---|"]
    n_docs = scores.get("n_docs") or {}
    for split in ("dev", "dev_gold", "test"):
        rep = scores.get(split) or {}
        if "f1" not in rep:
            continue
        ci = score_intervals(scores, split)

        def cell(m):
            if m not in ci:
                return _pct(rep.get(m))
            _, lo, hi = ci[m]
            return f"{_pct(rep.get(m))} ({_pct(lo)}–{_pct(hi)})"

        rows.append(f"| {split} | {n_docs.get(split, '–')} | {_pct(rep.get('precision'))} "
                    f"| {_pct(rep.get('recall'))} "
                    f"| {cell('f1')} | {cell('ign_f1')} |")
    return rows if len(rows) > 2 else ["No labelled split was scored."]


def _is_tiny(encoder: str) -> bool:
    return tiny.is_complete(encoder)


def encoder_licence(cfg) -> tuple[str, str, str]:
    """(what the encoder is, its licence, the Hugging Face licence id) of a config's encoder."""
    if cfg.dry_run:
        return (f"a tiny random-init stand-in for {cfg.encoder} (pemscl.tiny; no pretrained weights)",
                "MIT (made by pemscl)", "mit")
    if _is_tiny(cfg.encoder):
        return "a tiny random-init encoder (pemscl.tiny; no pretrained weights)", "MIT (made by pemscl)", "mit"
    name, licence, hf = ENCODERS.get(cfg.encoder, (cfg.encoder, None, "other"))
    return name, licence or "not known to pemscl: check the encoder's own model card", hf


def model_card(cfg, scores: dict, rel2id: dict, *, run_name: str = "", key: str | None = None) -> str:
    """The exported folder's README.md: what the model is, what it was trained on and how, its
    scores with per-document bootstrap intervals, how to use it, and the licences."""
    description, sources = DATA.get(cfg.regime, (f"the registered regime {cfg.regime!r}",
                                                  ["a registered data set: its licence is not known to pemscl; "
                                                   "name it here before sharing"]))
    enc_name, enc_licence, hf_licence = encoder_licence(cfg)
    limits = ", ".join(f"{s} {getattr(cfg, f'max_{s}_docs')}" for s in ("train", "dev", "test")
                       if getattr(cfg, f"max_{s}_docs"))
    rule = (f"a relation is predicted when its probability exceeds {scores['threshold']} (tuned on dev)"
            if scores.get("threshold") is not None else
            "a relation is predicted when its logit exceeds the pair's no-relation (NA) logit")
    if cfg.top_k is not None:
        rule += f", at most {cfg.top_k} per pair"
    lines = ["---", f"license: {hf_licence}", "library_name: pemscl",
             "tags: [relation-extraction, document-level-relation-extraction, docred, atlop, pemscl]", "---", "",
             f"# pemscl document-level relation extraction: {cfg.loss.kind} on {cfg.regime}", ""]
    if cfg.dry_run:
        lines += ["**Dry run**: a pipeline check with a tiny random-init encoder on a few documents. "
                  "Its scores mean nothing; do not use it as a model.", ""]
    elif _is_tiny(cfg.encoder):
        lines += ["**Test model**: a tiny random-init encoder (pemscl.tiny). Its scores mean nothing.", ""]
    lines += [
        "An ATLOP encoder with a group-bilinear head (Zhou et al., 2021) trained with the "
        f"`{cfg.loss.kind}` loss of pemscl, a re-implementation of PEMSCL (Guo, Kok and Bing, EACL 2023). "
        f"Given a document in DocRED format (sentences of words, entities with their mentions), it scores "
        f"every ordered pair of entities for {len(rel2id) - 1} relations "
        f"({'Wikidata properties, DocRED' if len(rel2id) == 97 else 'see rel2id.json'}).", "",
        "## Training", "",
        f"- encoder: {enc_name}" + (f" (`{cfg.encoder}`)" if enc_name != cfg.encoder else ""),
        f"- data (regime `{cfg.regime}`): {description}"
        + (f" Limited to the first documents: {limits}." if limits else ""),
        f"- loss: `{cfg.loss.kind}`; epochs: {cfg.epochs} budgeted, {scores.get('epochs_run', '?')} run, the state of "
        f"epoch {scores.get('best_epoch', '?')} kept (best dev F1); batch {cfg.batch_size}, learning rates "
        f"{cfg.lr_encoder} (encoder) / {cfg.lr_head} (head), seed {cfg.seed}"
        + (f", encoder layers trained: the top {cfg.train_layers}" if cfg.train_layers else ", full fine-tuning"),
        f"- precision {scores.get('precision', cfg.precision)} on {scores.get('device', cfg.device)}"
        + (f" x {scores['world_size']}" if (scores.get('world_size') or 1) > 1 else ""),
        f"- decision rule: {rule}",
        f"- pemscl {__version__}, config key `{key or cfg.key()}`"
        + (f", run folder `{run_name}`" if run_name else ""), "",
        "Trained with:", "", "```", train_command(cfg), "```", "",
        "## Scores", "",
        "Official DocRED scorer, in percent; Ign F1 leaves out facts seen in training. The interval is the 2.5th to "
        "97.5th percentile of 2,000 resamples of the scored documents (one training run: it covers the choice of "
        "documents, not training randomness).", "",
        *_scores_table(scores), "",
        "## Use", "",
        "```python", "from pemscl import train", "model, cfg = train.load(\"THIS_FOLDER\")",
        "preds = train.predict(model, docs)  # docs: a list of DocRED-format documents", "```", "",
        "```", "python -m pemscl.predict THIS_FOLDER docs.json --out predictions.json", "```", "",
        "Loading reads safetensors and JSON only. `encoder/` is a Hugging Face checkpoint with its tokenizer; "
        "`head.safetensors` holds the rest of the model (extractors and classifier).", "",
        "## Licences", "",
        f"- encoder: {enc_name}: {enc_licence}",
        *[f"- data: {s}" for s in sources],
        "- pemscl (the code that trained and runs the model): MIT", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the hub
def _hub():
    try:  # optional: only --push-to-hub needs it
        import huggingface_hub
    except ImportError:
        raise ExportError("--push-to-hub needs the huggingface_hub package: pip install huggingface_hub") from None
    return huggingface_hub


def push_to_hub(folder: str | Path, repo: str, *, private: bool = False) -> str:
    """Upload an exported folder to the Hugging Face Hub repository `repo` (created if missing)."""
    check_export(folder)
    api = _hub().HfApi()
    api.create_repo(repo, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="pemscl export")
    return f"https://huggingface.co/{repo}"


# --------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pemscl.export", description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a complete run folder (DONE, config.json, scores.json, history.json, model.pt)")
    ap.add_argument("out_dir", help="the folder to write (must not exist, be empty, or hold an earlier export)")
    ap.add_argument("--force", action="store_true", help="replace an earlier export in OUT_DIR")
    ap.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to this Hugging Face Hub repository")
    ap.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    return ap


def main(argv: Sequence[str] | None = None) -> Path:
    """Entry point of `python -m pemscl.export`; returns the exported folder."""
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        if args.push_to_hub:
            _hub()  # a missing package is said before minutes of exporting
        out = export_run(args.run_dir, args.out_dir, force=args.force)
        print(f"exported {args.run_dir} to {out}")
        if args.push_to_hub:
            print(f"uploaded to {push_to_hub(out, args.push_to_hub, private=args.private)}")
    except ExportError as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
