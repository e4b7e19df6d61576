"""The GPU check's report (pemscl.gpu_check), read from a folder like the one
benchmarks/gpu_check.sh writes: counts, dry run, the GPU runs beside their CPU records."""

import json

from pemscl import gpu_check as G
from pemscl import train as T
from pemscl.runs import Run

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="2"
 skipped="3" tests="20" time="12.5"><testcase classname="t" name="a" time="1"/></testsuite></testsuites>"""


def _scores(dev, test, best, run, seconds, **extra):
    return {"dev": {"f1": dev}, "test": {"f1": test}, "best_epoch": best, "epochs_run": run,
            "seconds": seconds, **extra}


def _folder(tmp_path):
    d = tmp_path / "gpu_check"
    d.mkdir()
    (d / "tests.xml").write_text(JUNIT)
    (d / "dryrun.json").write_text(json.dumps({"part": "dryrun", "seconds": 44}))
    (d / "dryrun.log").write_text("dry run of profile paper: 3 configs\n[1/3] ATL ...\n[2/3] BCE ...\n")
    (d / "device.json").write_text(json.dumps({"name": "Some GPU", "torch": "2.x"}))
    (d / "minilm_atl_66_scores.json").write_text(json.dumps(
        _scores(0.566, 0.570, 14, 17, 176.0, device="cuda", converged=True, peak_cuda_mb=1561.0)))
    (d / "minilm_pemscl_67_scores.json").write_text(json.dumps(_scores(0.5, 0.5, 3, 3, 60.0, device="cuda")))
    (d / "notes_scores.json").write_text("{}")  # not a run file: ignored
    return d


def test_report_counts_and_pairs_each_gpu_run_with_its_cpu_record(tmp_path):
    d = _folder(tmp_path)
    cpu = Run(dir=tmp_path, config=T.preset("cpu", loss=T.loss_spec("atl"), seed=66, device="cpu"),
              scores=_scores(0.563, 0.567, 14, 17, 57 * 60.0), history=[])
    other = Run(dir=tmp_path, config=T.preset("cpu", loss=T.loss_spec("atl"), seed=67, device="cpu"),
                scores=_scores(0.1, 0.1, 1, 1, 60.0), history=[])
    r = G.report([other, cpu], folder=d)
    assert r["device"] == "Some GPU"
    assert r["tests"] == {"tests": 20, "failures": 2, "errors": 1, "skipped": 3, "seconds": 12.5, "passed": 14}
    assert r["dry_run"] == {"seconds": 44, "trained": 2, "configs": 3}
    atl, pemscl = r["runs"]
    assert (atl["loss"], atl["seed"], atl["cpu_dev_f1"], atl["cpu_minutes"]) == ("atl", 66, 0.563, 57.0)
    assert pemscl["seed"] == 67 and pemscl["cpu_dev_f1"] is None  # no CPU record of that config
    md = G.markdown(r)
    assert "on Some GPU" in md and "14 passed, 2 failed, 1 errors, 3 skipped" in md
    assert "| atl | 66 | 56.6 | 56.3 | 57.0 | 56.7 | 14/17 | 14/17 | 2.9 | 57 |" in md
    assert "| pemscl | 67 | 50.0 | – | 50.0 | – | 3/3 | – | 1.0 | – |" in md


def test_no_folder_no_section(tmp_path):
    assert G.report([], folder=tmp_path / "absent") is None
    assert G.markdown(None) == ""
