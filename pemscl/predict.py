"""Predict relations in new documents with a trained run:

    python -m pemscl.predict runs/redocred-mini-pemscl-<key> my_docs.json --out my_preds.json
    python -m pemscl.predict exported/pemscl-minilm my_docs.json --out my_preds.json   # python -m pemscl.export

The documents are DocRED-format JSON (a list of {title, sents, vertexSet[, labels]}); they are
validated first, and a malformed one is named (index, title, field) before any model is loaded.
The predictions are written in the official format ({title, h_idx, t_idx, r} per fact), which
`python -m pemscl.evaluate PRED.json GOLD.json` scores. The decision rule is the run's own: its
tuned threshold for BCE-style losses, the NA class as a threshold otherwise; --top-k and
--threshold override it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Sequence

from . import data as D
from . import evaluate as E
from . import export as X
from . import layout as L
from . import train

MODEL_FILE = "model.pt"


class PredictError(Exception):
    """A problem with the inputs of the command (printed as one line, exit status 2)."""


def read_documents(path: str | Path, rel2id: dict[str, int] | None = None) -> list[dict]:
    """The documents of a JSON file, validated (the error names the file, document and field);
    relation codes against `rel2id` (default: DocRED's, from the data folder)."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    try:
        docs = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PredictError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(docs, list):
        raise PredictError(f"{path}: expected a JSON list of documents, got {type(docs).__name__}")
    try:
        D.validate_docs(docs, source=str(path), rel2id=rel2id)
    except D.DocumentError as e:
        raise PredictError(str(e)) from None
    return docs


def check_run(run_dir: str | Path) -> Path:
    """The run folder, if it holds what prediction needs (DONE and model.pt), or an exported
    folder (python -m pemscl.export) holding all its files."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PredictError(f"{run_dir}: no such run folder")
    if X.is_export(run_dir):
        try:
            X.check_export(run_dir)
        except X.ExportError as e:
            raise PredictError(str(e)) from None
        return run_dir
    if not (run_dir / L.DONE).exists():
        raise PredictError(f"{run_dir} is not a complete run (no DONE marker): train it to the end first")
    if not (run_dir / MODEL_FILE).exists():
        raise PredictError(f"{run_dir} has no {MODEL_FILE}: it was trained with save_model=False, or copied "
                           "without its weights; retrain it (save_model=True) to predict")
    return run_dir


def run_predict(run_dir: str | Path, docs_path: str | Path, *, out: str | Path | None = None,
                top_k: int | None = None, threshold: float | None = None, batch_size: int = 4,
                device: str = "auto", precision: str = "auto") -> list[dict]:
    """Predictions of the run in `run_dir` for the documents in `docs_path` (written to `out`)."""
    docs = read_documents(docs_path, rel2id=_relation_set(run_dir))
    run_dir = check_run(run_dir)
    model, _ = train.load(run_dir, device=device)
    preds = train.predict(model, docs, top_k=top_k, threshold=threshold, batch_size=batch_size,
                          precision=precision)
    if out is not None:
        E.write_predictions(preds, out)
    return preds


def _relation_set(folder: str | Path) -> dict[str, int] | None:
    """The relation set a run or exported folder keeps beside its model (None when it has none):
    documents are checked against the model's relations, and an export needs no data folder."""
    path = Path(folder) / X.REL2ID
    try:
        return {r: int(i) for r, i in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return None  # no or unreadable file: check_run or train.load names the problem


def summarise(preds: Sequence[dict], docs_path: str | Path, out: str | Path | None) -> str:
    per_doc = collections.Counter(p["title"] for p in preds)
    rels = collections.Counter(p["r"] for p in preds)
    top = ", ".join(f"{r} {n}" for r, n in rels.most_common(5))
    lines = [f"{len(preds)} relation facts in {len(per_doc)} documents of {docs_path}"
             + (f" (most frequent: {top})" if top else "")]
    if out is not None:
        lines.append(f"written to {out}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pemscl.predict", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir",
                    help="a complete run folder (with model.pt) or an exported folder (python -m pemscl.export)")
    ap.add_argument("docs", help="DocRED-format documents (JSON list)")
    ap.add_argument("--out", help="where to write the predictions (official format); default: print them")
    ap.add_argument("--top-k", type=int, help="at most K relations per pair (the released code uses 4)")
    ap.add_argument("--threshold", type=float, help="probability threshold instead of the run's decision rule")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="auto | fp32 | bf16 | fp16")
    return ap


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Entry point of `python -m pemscl.predict`; returns the predictions."""
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        preds = run_predict(args.run_dir, args.docs, out=args.out, top_k=args.top_k, threshold=args.threshold,
                            batch_size=args.batch_size, device=args.device, precision=args.precision)
    except PredictError as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    if args.out is None:
        json.dump(preds, sys.stdout, indent=1, default=int)  # numpy ints
        sys.stdout.write("\n")
        print(summarise(preds, args.docs, None), file=sys.stderr)  # stdout stays valid JSON
    else:
        print(summarise(preds, args.docs, args.out))
    return preds


if __name__ == "__main__":
    main()
