"Every notebook, executed by nbdev's own test runner with its quick default parameters."
from pathlib import Path
import pytest
from nbdev import test as nbtest          # imported as a module so pytest does not collect `test_nb`
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))

def test_every_numbered_notebook_is_here():
    names = {p.stem for p in NOTEBOOKS}
    assert {"00_features", "01_easy", "02_medium", "03_hard", "04_analysis", "90_pipeline"} <= names, names

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    flags = get_config(path=ROOT).get("tst_flags", "").split()
    ok, seconds = nbtest.test_nb(nb, skip_flags=flags, showerr=True)
    assert ok, f"{nb.name} failed after {seconds:.0f} s (traceback above)"
