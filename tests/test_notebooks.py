"""Every notebook, executed by nbdev's own test runner with its quick default parameters.

Library chapters (1x, 2x, 90) are independent and run one test each (fast). The report notebooks 00-04 are one
study: 04 analyses what 01-03 wrote, so they run in order, in one test, on the quick default dataset; that takes
minutes (the quick corpus is built first on a fresh clone), so it is marked `slow` (CI and `make test-all` run it)."""
from pathlib import Path
import pytest
from nbdev import test as nbtest          # imported as a module so pytest does not collect `test_nb`
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))
REPORT = [p for p in NOTEBOOKS if p.stem[:2] in ("00", "01", "02", "03", "04")]
LIBRARY = [p for p in NOTEBOOKS if p not in REPORT]


def run(nb: Path):
    flags = get_config(path=ROOT).get("tst_flags", "").split()
    ok, seconds = nbtest.test_nb(nb, skip_flags=flags, showerr=True)
    assert ok, f"{nb.name} failed after {seconds:.0f} s (traceback above)"


def test_every_numbered_notebook_is_here():
    assert [p.stem for p in REPORT] == ["00_features", "01_easy", "02_medium", "03_hard", "04_analysis"]
    assert {"10_core", "11_data", "13_train", "14_cluster", "21_protocol", "23_experiment", "90_pipeline"} <= {p.stem for p in LIBRARY}


@pytest.mark.parametrize("nb", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_notebook(nb):
    run(nb)


@pytest.mark.slow
def test_report_notebooks_in_order():
    for nb in REPORT: run(nb)
