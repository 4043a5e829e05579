"""Compare's figures drawn by plotly.js in Debian's chromium (issue 18): every run's legend entry, every
subplot title and every tick label lies inside the figure (nothing clipped), and no two titles overlap.
The figures are the page's own (pages/figures/compare.py), written as standalone HTML (plotly.js inlined,
offline)."""
from __future__ import annotations

import pytest
from support.lessons import small_config, small_lesson

from cit_core.trainer import Trainer
from pages import compare as page
from pages.figures import compare as compare_figures

WIDTH = 1100                 # about the plot's width on the Compare tab in a 1280-px window


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIT_RUNS_DIR", str(root))
        name = "a-long-saved-run-name-20261202-080000-seqft-s0-0123abcd"
        Trainer(small_config("seqft", steps=2), lesson=small_lesson(n_train=16, n_eval=8),
                run_dir=root / name).run_to_end()
        records = page.load(["gallery: seqft", "gallery: replay", name, "gallery: smollm2-seqft_lora",
                             "gallery: inscl"])
        yield records, {"curves": compare_figures.curves_figure(records),
                        "matrices": compare_figures.matrices_figure(records)}


def boxes(pg, selector):
    return pg.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                             "return [r.left, r.top, r.right, r.bottom, e.textContent]; })")


def inside(box, outer, slack=1.0):
    return (box[0] >= outer[0] - slack and box[1] >= outer[1] - slack and box[2] <= outer[2] + slack
            and box[3] <= outer[3] + slack)


def overlap(a, b):
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


@pytest.mark.parametrize("which", ["curves", "matrices"])
def test_nothing_is_clipped_and_titles_do_not_overlap(browser, figures, tmp_path, which):
    records, figs = figures
    path = tmp_path / f"{which}.html"
    figs[which].write_html(str(path), include_plotlyjs=True, full_html=True)
    pg = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        pg.goto(path.as_uri())
        pg.wait_for_selector(".main-svg")
        (svg,) = boxes(pg, ".js-plotly-plot .main-svg:first-child")
        titles = boxes(pg, ".annotation-text")
        ticks = boxes(pg, ".xtick text") + boxes(pg, ".ytick text")
        legend = boxes(pg, ".legend .traces")
        if which == "curves":
            assert len(legend) == len(records)           # one entry per run, the third and later included
            assert [b[4] for b in legend] == [r.name for r in records]
        assert titles and ticks
        for box in [*legend, *titles, *ticks]:
            assert inside(box, svg), (which, box, svg)
        for i, a in enumerate(titles):
            for b in titles[i + 1:]:
                assert not overlap(a, b), (which, a, b)
        for t in titles:
            for tick in ticks:
                assert not overlap(t, tick), (which, t, tick)
    finally:
        pg.close()
