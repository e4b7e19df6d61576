import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _data_dir() -> Path:
    env = os.environ.get("PEMSCL_DATA")
    if env:
        return Path(env)
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "meta" / "rel2id.json").exists():
        pytest.fail(f"real DocRED data not found at {d}; set PEMSCL_DATA (see README)")
    return d


# Experiments merge every run they train into results/runs.jsonl; under test that record is a
# throwaway file, never the repository's (tests that need their own set PEMSCL_RESULTS themselves).
os.environ.setdefault("PEMSCL_RESULTS", str(Path(__import__("tempfile").mkdtemp(prefix="pemscl-results-"))))
