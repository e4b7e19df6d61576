"""Where things lie on disk: the files of a run folder and of an exported folder.

A run folder (runs/<regime>-<loss>-<key>/, pemscl.runs) is written by pemscl.train and read by
the tables, the notebooks and pemscl.export; an exported folder (pemscl.export) is what leaves
the workbench. Both layouts are named here once, so that every module that reads a folder agrees
with the one that wrote it, and so that the model can recognise an exported encoder without
importing the exporter (which builds on the model).
"""

from __future__ import annotations

from pathlib import Path

# --------------------------------------------------------------------------- a run folder
CONFIG = "config.json"  # the TrainConfig (its key names the folder)
HISTORY = "history.json"  # one row per epoch, rewritten after each (readable while the run trains)
SCORES = "scores.json"  # dev / test scores, per-document counts, the decision threshold
REL2ID = "rel2id.json"  # the relation set of a run on a data set of one's own
DONE = "DONE"  # written last: a folder without it is a run still training or interrupted
MODEL_FILE = "model.pt"  # the trainable parameters (torch.save of tensors; loaded weights_only)
STATE = "state.pt"  # everything to continue after the last finished epoch (deleted when DONE)
PREV_STATE = "state.prev.pt"  # the state an epoch before STATE: what a damaged STATE falls back to


def predictions_file(split: str) -> str:
    """The official-format predictions of a split ("dev", "dev_gold", "test", ...)."""
    return f"predictions_{split}.json"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / MODEL_FILE


# --------------------------------------------------------------------------- an exported folder
MARKER = "pemscl_export.json"  # its presence makes a folder an export
ENCODER_DIR = "encoder"  # Hugging Face save_pretrained of the encoder with the fine-tuned layers


def is_export(path: str | Path) -> bool:
    """Whether `path` is an exported folder (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def is_exported_encoder(path: str | Path) -> bool:
    """Whether `path` is the encoder/ subfolder of an exported folder: model.resolve_encoder takes
    it as it is, also under a dry run (which maps every other encoder name to a tiny stand-in)."""
    p = Path(path)
    return p.name == ENCODER_DIR and is_export(p.parent)
