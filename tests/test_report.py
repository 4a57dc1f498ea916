"""Table 2 as a reader meets it: one accuracy per run with its spread, a paired comparison with the random run
by seed, units in the headings, the budget in the caption, the paper's values only where they compare."""
import math
from html.parser import HTMLParser

import pandas as pd
import pytest

from lightsnn.pipeline.report import table2, table2_caption, verdict, write_table


def _frame(accs: dict, epochs: int = 4, max_batches=None, dataset: str = "digits", timesteps: int = 2) -> pd.DataFrame:
    rows = []
    for run, values in accs.items():
        for seed, acc in enumerate(values):
            rows.append({"dataset": dataset, "run": run, "method": run, "seed": seed, "timesteps": timesteps,
                         "structure": "2 cells", "genotype": "0302 0030 3003 0000", "classes": 10, "epochs": epochs,
                         "max_batches": max_batches, "test_samples": 360, "acc": acc, "best_epoch_acc": acc,
                         "search_s": 1.5, "sar": 0.1, "params": 1000.0, "synops": 1e4, "energy_uj": 0.02,
                         "memory_mb": 0.004, "size_kb": 4.0, "bit_synops": 1e5})
    return pd.DataFrame(rows)


class _Table(HTMLParser):
    """The headings, the body cells and the caption of an HTML table."""

    def __init__(self):
        super().__init__()
        self.headings, self.rows, self.caption, self._in = [], [], "", None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("th", "td", "caption"):
            self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "th":
            self.headings.append(data.strip())
        elif self._in == "td":
            self.rows[-1].append(data.strip())
        elif self._in == "caption":
            self.caption += data


def test_the_paired_comparison_by_seed_worked_by_hand():
    # lightsnn - random per seed: 20, 12, 20 -> mean 17.33, sd 4.619, t = 6.50 on 2 df, p = 0.0229
    frame = _frame({"random": [50, 60, 55], "lightsnn": [70, 72, 75], "snasnet": [51, 59, 56]})
    numeric, display = table2(frame)
    row = numeric.set_index("run").loc["lightsnn"]
    assert row["acc_vs_random_mean_diff"] == pytest.approx(52 / 3)
    half = 4.302653 * math.sqrt(64 / 3) / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert row["acc_vs_random_diff_low"] == pytest.approx(52 / 3 - half, rel=1e-5)
    assert row["acc_vs_random_t_p"] == pytest.approx(0.0229, abs=5e-4)
    shown = display.set_index("run")["vs random (pp, 95% CI)"]
    assert shown["random"] == "baseline"
    assert shown["lightsnn"] == "+17.3 [+5.9, +28.8] better, p = 0.023"
    assert shown["snasnet"].endswith(" n.s., p = 0.67")
    assert "method" not in display.columns  # every run is its method: the column would repeat 'run'
    assert list(display.columns[:6]) == ["dataset", "run", "structure", "T", "seeds", "epochs"]
    assert "accuracy (%)" in display.columns and "energy (µJ/sample)" in display.columns
    assert "memory_mb" not in display.columns  # one size, as stored, for every method


@pytest.mark.parametrize("paired, words", [
    ({"n": 1, "mean_diff": 3.0}, "no test (1 seed paired)"),
    ({"n": 2, "mean_diff": -19.72, "diff_low": -432.67, "diff_high": 393.23, "t_p": 0.5},
     "-19.7 (no interval at 2 seeds)"),  # the default run printed [-432.67, +393.23]
    ({"n": 2, "mean_diff": 0.0, "diff_low": 0.0, "diff_high": 0.0, "t_p": math.nan}, "+0.0, identical on every seed"),
    ({"n": 5, "mean_diff": -4.0, "diff_low": -6.0, "diff_high": -2.0, "t_p": 0.004}, "-4.0 [-6.0, -2.0] worse, p = 0.004"),
])
def test_the_verdict_says_what_the_interval_and_p_say(paired, words):
    assert verdict(paired) == words
    assert len(verdict(paired)) <= 40  # one or two lines of a table cell (it wrapped to 5-6 at 1,400 px)


def test_seeds_read_as_a_reader_writes_them():
    from lightsnn.pipeline.report import seeds_text

    assert [seeds_text(s) for s in ([0], [1, 0], [0, 1, 4], range(10))] == ["0", "0 and 1", "0, 1 and 4", "0-9"]


def test_paper_values_appear_only_at_the_papers_setup():
    short = _frame({"random": [10, 11], "lightsnn": [12, 13]}, dataset="cifar10", timesteps=5)
    numeric, display = table2(short)
    assert numeric["paper_acc"].isna().all() and "paper acc. (%)" not in display.columns
    assert "paper" not in table2_caption(short)  # no paper value printed: no sentence about them
    capped = _frame({"lightsnn": [90, 91]}, epochs=300, max_batches=5, dataset="cifar10", timesteps=5)
    assert table2(capped)[0]["paper_acc"].isna().all()  # 300 epochs of 5 batches are not the paper's budget
    full = _frame({"random": [90, 91], "lightsnn": [92, 93]}, epochs=300, dataset="cifar10", timesteps=5)
    numeric, display = table2(full)
    assert numeric.set_index("run").loc["lightsnn", "paper_acc"] == 93.00  # the LightSNN paper's CIFAR-10 figure
    assert display.set_index("run").loc["lightsnn", "paper acc. (%)"] == 93.00
    assert "The LightSNN paper's values (A40 GPU) are printed for its own methods" in table2_caption(full)
    assert math.isnan(numeric.set_index("run").loc["random", "paper_acc"])  # the paper has no random row


def test_the_html_table_carries_its_caption(tmp_path):
    frame = _frame({"random": [50, 60], "lightsnn": [70, 72]}, max_batches=5)
    numeric, display = table2(frame)
    write_table(numeric, display, tmp_path / "table2", table2_caption(frame))
    parsed = _Table()
    parsed.feed((tmp_path / "table2.html").read_text())
    assert parsed.headings == list(display.columns)
    body = [row for row in parsed.rows if row]
    assert [row[1] for row in body] == ["random", "lightsnn"]
    assert body[1][parsed.headings.index("vs random (pp, 95% CI)")] == (
        "+16.0 (no interval at 2 seeds)")  # t = 4 on 1 df: [-34.82, +66.82]
    assert "mean ± std over seeds 0 and 1, trained 4 epoch(s) of at most 5 batches" in parsed.caption
    assert "test samples: digits 360" in parsed.caption
    assert "without an interval: 2 seeds give none worth printing" in parsed.caption
    md = (tmp_path / "table2.md").read_text()
    assert md.splitlines()[0].startswith("| dataset") and md.rstrip().endswith("pruning).")


def _two_panels() -> pd.DataFrame:
    """The default run's shape: on ndigits LitE-SNN fires far more than anything on digits (0.41-0.44 against a
    digits maximum of 0.2), which a shared x-axis cut off."""
    digits = _frame({"random": [60.0, 70.0], "snasnet": [80.0, 90.0], "litesnn": [95.0, 96.0]})
    digits["sar"] = [0.05, 0.08, 0.1, 0.12, 0.18, 0.2]
    ndigits = _frame({"random": [40.0, 50.0], "snasnet": [60.0, 65.0], "litesnn": [86.0, 88.0]}, dataset="ndigits")
    ndigits["sar"] = [0.2, 0.25, 0.3, 0.35, 0.41, 0.44]
    return pd.concat([digits, ndigits], ignore_index=True)


def test_every_plotted_point_lies_inside_its_axes_and_the_legend_off_the_data():
    import matplotlib.pyplot as plt

    from lightsnn.pipeline.report import accuracy_vs_sar_figure, search_time_figure

    frame = _two_panels()
    fig = accuracy_vs_sar_figure(frame)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["digits", "ndigits"]
    for ax in axes:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        points = [p for c in ax.collections for p in c.get_offsets()]
        assert len(points) == (frame["dataset"] == ax.get_title()).sum() + 3  # every seed, and 3 means
        for x, y in points:
            assert x0 <= x <= x1 and y0 <= y <= y1, (ax.get_title(), x, y, ax.get_xlim())
        assert "(" in ax.get_xlabel() and "(%)" in ax.get_ylabel()  # units on both axes of every panel
    legend = fig.legends[0].get_window_extent(renderer)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"random", "snasnet", "litesnn"} <= set(labels)
    for ax in axes:  # the legend covers no panel
        assert not legend.overlaps(ax.get_window_extent(renderer)), ax.get_title()
    plt.close(fig)
    fig = search_time_figure(frame)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert not legend.overlaps(ax.get_window_extent(fig.canvas.get_renderer()))
    assert "(s" in ax.get_ylabel()
    plt.close(fig)
