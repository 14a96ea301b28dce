"Markers for tests whose files do not carry them yet."
import pytest

# End-to-end runs of real report notebooks that live in files of other chapters: `slow`, like the five-notebook
# runs in test_notebooks.py and test_layouts.py (`make test` leaves them out; CI and `make test-all` run them).
SLOW = {"tests/test_resume.py::test_an_interrupted_run_resumes_with_the_same_metrics_and_less_work"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW: item.add_marker(pytest.mark.slow)
