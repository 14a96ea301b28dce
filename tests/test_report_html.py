"report.html opened in a real headless browser (Debian's chromium): every image loads, every section is present."
import json, re, shutil, subprocess

import matplotlib
matplotlib.use("Agg")                      # tests only; notebooks keep the inline backend
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from music_vae_nb import plots, report as R

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (Debian: apt-get install chromium)")

PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const secs = [...document.querySelectorAll('section > h2')].map(h => h.textContent);
  document.body.setAttribute('data-probe', JSON.stringify({imgs, secs, width: document.body.scrollWidth}));
});</script>"""


def browser(*args, timeout=120):
    base = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--disable-dev-shm-usage", "--virtual-time-budget=10000"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)


def demo_report() -> tuple[str, list[str]]:
    "A report of the synthetic table with the figures and tables a real one has."
    M = R.synthetic_metrics()
    rng = np.random.default_rng(0)
    Z = np.vstack([rng.normal(c, .3, (30, 4)) for c in range(3)])
    y = np.repeat(["a", "b", "c"], 30); y2 = np.tile(["old", "new"], 45); cl = np.repeat([0, 1, 2], 30)[rng.permutation(90)]
    P = plots.project_2d(Z, "pca")
    T = pd.crosstab(pd.Series(y, name="style"), pd.Series(cl, name="cluster"))
    figures = [(plots.plot_latent_map(P, {"cluster": cl, "style": y, "era": y2}), "PCA map of the test items, by cluster and label."),
               (plots.plot_contingency(T), "Counts; colour: share of the row.")]
    sections = R.standard_sections(M, ["style", "era"], "style", manifest=pd.DataFrame({"style": y, "era": y2}),
                                   figures=figures)
    page = R.make_report_html("Toy results", sections)
    assert page.count("<table") == 5                       # families, headline, selection, confounds, era within style
    plt.close("all")
    return page, [s["title"] for s in sections]


@pytest.fixture(scope="module")
def page_and_titles():
    return demo_report()


def test_every_image_loads_and_every_section_is_present(tmp_path, page_and_titles):
    page, titles = page_and_titles
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    out = browser(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri())
    m = re.search(r"data-probe=\"([^\"]*)\"", out.stdout)
    assert m, out.stderr[-2000:]
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["secs"] == titles
    assert len(probe["imgs"]) == page.count("<img") == 4          # latent map, contingency, modalities, beta
    assert all(c and w > 0 and h > 0 for c, w, h in probe["imgs"]), probe["imgs"]
    assert probe["width"] <= 1100                                  # nothing wider than the page


def test_screenshot(tmp_path, page_and_titles):
    page, _ = page_and_titles
    path = tmp_path / "report.html"; path.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    browser(f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,3200", path.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = __import__("os").environ.get("REPORT_SCREENSHOT")
    if keep: shutil.copy(shot, keep)
