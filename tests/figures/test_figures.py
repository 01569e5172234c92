"""Tests for the figure functions: every registered figure writes a real PNG and PDF, or a clear
error."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import REPO
from helpers.runs import write_runs
from helpers.training import run_mapping
from minnorm.analysis.collect import collect_experiment
from minnorm.config.experiment import ExperimentConfig
from minnorm.figures import FIGURES
from minnorm.figures.style import seed_band, selection_title

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A blank 3-panel canvas at 150 dpi compresses to ~10 KB; real plots are well above.
MIN_PNG_BYTES = 20_000
ARORA = {"arora_fig1", "arora_fig2"}


@pytest.fixture(scope="module")
def widths_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("widths")
    special = {(400, 1, 0.0, 0.01): {"diverge_at": 200, "truncate": True}}
    return collect_experiment(
        write_runs(root, widths=(200, 400, 800), seeds=(0, 1), lrs=(0.01, 0.02), special=special)
    )


@pytest.fixture(scope="module")
def noise_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    return collect_experiment(
        write_runs(root, widths=(500,), seeds=(0, 1), label_noises=(0.0, 0.5, 1.0))
    )


def _check_outputs(tmp_path, name):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > MIN_PNG_BYTES
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [png.name, pdf.name]
    )  # no temp files left


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_registry_entry_is_complete(name):
    spec = FIGURES[name]
    assert spec.name == name
    assert callable(spec.function) and spec.function.__name__ == f"plot_{name}"
    assert spec.caption.is_file() and spec.caption.name == f"{name}.rst"
    assert spec.summary and 1 <= spec.min_widths <= 4 and spec.min_noise_levels >= 1


def test_registry_import_does_not_load_matplotlib():
    code = (
        "import sys, minnorm.figures, minnorm.config.validate; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _experiment(widths=3, noise=2, dataset="digits", figures=()) -> ExperimentConfig:
    data = {"name": dataset, "n_train": 10, "n_test": 10, "seed": 0}
    sections = run_mapping(data, width=1)
    block = {
        **{key: sections[key] for key in ("data", "model", "training")},
        "figures": list(figures),
        "sweep": {
            "width": list(range(1, widths + 1)),
            "seed": [0],
            "label_noise": [0.0, 1.0][:noise],
        },
    }
    return ExperimentConfig.from_mapping("e", block)


def test_problems_name_the_figure_position_and_the_requirement():
    where = "experiments.e"
    spec = FIGURES["arora_fig2"]
    assert spec.problems(where, _experiment(figures=["ss_fig1", "arora_fig2"])) == []
    bad = spec.problems(
        where, _experiment(noise=1, dataset="sphere_quadratic", figures=["ss_fig1", "arora_fig2"])
    )
    assert len(bad) == 2 and all(p.startswith("experiments.e.figures[1]: arora_fig2") for p in bad)
    assert "needs +-1 labels" in bad[0] and "digits, mnist, cifar10" in bad[0]
    assert "at least 2 values, found 1" in bad[1]
    widths = FIGURES["width_scaling"].problems(
        where, _experiment(widths=2, figures=["width_scaling"])
    )
    assert widths == [
        "experiments.e.figures[0]: width_scaling needs at least 3 widths in "
        "experiments.e.sweep.width, found 2"
    ]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_writes_png_and_pdf(name, widths_ds, noise_ds, tmp_path):
    ds = noise_ds if name in ARORA else widths_ds
    FIGURES[name](ds, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")
    _check_outputs(tmp_path, name)


@pytest.mark.parametrize("name", ["ss_fig1", "arora_fig1", "function_space"])
def test_single_width_single_noise_works(name, noise_ds, tmp_path):
    one = noise_ds.isel(label_noise=[0], seed=[0])
    FIGURES[name](one, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")
    _check_outputs(tmp_path, name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("width_scaling", "two or more widths, dataset has 1"),
        ("lazy_regime", "two or more widths, dataset has 1"),
        ("arora_fig2", "two or more label_noise levels, dataset has 1"),
    ],
)
def test_insufficient_dims_raise(name, message, noise_ds, tmp_path):
    one = noise_ds.isel(label_noise=[0])
    with pytest.raises(ValueError, match=f"figure '{name}'.*{message}"):
        FIGURES[name](one, tmp_path / "x.png", tmp_path / "x.pdf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_missing_variable_is_named(name, widths_ds, noise_ds, tmp_path):
    ds = (noise_ds if name in ARORA else widths_ds).drop_vars("diverged")
    with pytest.raises(ValueError, match=f"figure '{name}'.*lacks.*'diverged'"):
        FIGURES[name](ds, tmp_path / "x.png", tmp_path / "x.pdf")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_all_diverged_raises(name, widths_ds, noise_ds, tmp_path):
    ds = (noise_ds if name in ARORA else widths_ds).copy()
    ds["diverged"] = ds["diverged"] * 0 + 1
    with pytest.raises(ValueError, match=f"figure '{name}'.*(every run diverged|has 0)"):
        FIGURES[name](ds, tmp_path / "x.png", tmp_path / "x.pdf")
    assert list(tmp_path.iterdir()) == []


def test_title_counts_hidden_runs_and_first_lr(widths_ds):
    from minnorm.figures.style import select

    sel = select(widths_ds)
    title = selection_title(widths_ds, sel, "what")
    assert "lr 0.01 (first of 2)" in title
    assert title.endswith("1 diverged run not shown")


def test_seed_band_mean_and_sd_skip_nan():
    import xarray as xr
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    da = xr.DataArray([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]], dims=("seed", "step"))
    assert seed_band(ax, np.array([0, 1, 2]), da, color="k", label="x")
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1])  # the all-NaN step is not drawn
    np.testing.assert_array_equal(line.get_ydata(), [2.0, 2.0])
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(1.0) and band[:, 1].max() == pytest.approx(3.0)
    assert not seed_band(ax, np.array([0, 1, 2]), da * np.nan, color="k", label="y")


REPORT = REPO / "workflow" / "report"


class _Snakemake:
    """The parts of Snakemake's caption-rendering object the captions use."""

    def __init__(self, exp: str, cfg: dict, html: Path, summary: Path):
        self.wildcards = SimpleNamespace(exp=exp)
        self.config = {"experiments": {exp: cfg}}
        self.output = SimpleNamespace(html=str(html), summary=str(summary))


@pytest.mark.parametrize("name", sorted(FIGURES) + ["checks", "checks_summary", "workflow"])
def test_caption_renders_as_clean_rst(name, tmp_path, monkeypatch):
    jinja2 = pytest.importorskip("jinja2")
    core = pytest.importorskip("docutils.core")
    import pandas as pd

    from minnorm.analysis.check_tables import checks_html
    from minnorm.analysis.checks import COLUMNS

    # The checks captions include the job's HTML table (a file relative to the working folder).
    monkeypatch.chdir(tmp_path)
    row = ["demo", "claim", "c", "", "||W|| shrinks", -0.25, -0.3, -0.2, "|exponent| < 1"]
    table = pd.DataFrame([[*row, "supported", "a_b_"]], columns=COLUMNS)
    Path("checks.html").write_text(checks_html(table))
    # A figure's caption may include the numbers the figure measured (pipeline.make_figure).
    Path("summary.html").write_text("<ul><li>exponent -0.31 [-0.33, -0.29]</li></ul>\n")
    cfg = {
        "data": {"name": "sphere_quadratic"},
        "training": {"steps": 123, "lr": 0.01},
        "sweep": {"width": [100, 200], "seed": [0, 1], "label_noise": [0.0, 1.0]},
    }
    source = (FIGURES[name].caption if name in FIGURES else REPORT / f"{name}.rst").read_text()
    text = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(source)
        .render(
            snakemake=_Snakemake("demo", cfg, Path("checks.html"), Path("summary.html")), files=[]
        )
    )
    if name in FIGURES:
        assert "``demo``" in text and "[100, 200]" in text
    html = core.publish_parts(
        text, writer="html", settings_overrides={"report_level": 2, "halt_level": 5}
    )["body"]
    assert "system-message" not in html
    if name.startswith("checks"):
        assert 'color:#111111;font-weight:bold">supported</td>' in html
        assert "|exponent| &lt; 1" in html
    if "snakemake.output.summary" in source:
        assert "exponent -0.31 [-0.33, -0.29]" in html


def test_report_opens_with_the_forest_plot_when_it_exists(tmp_path):
    """workflow.rst includes results/forest.html, the PNG as a data URI (so the report stays one
    file), when the report holds the forest plot, and renders without it otherwise (a partial
    run's report)."""
    from docutils.core import publish_parts
    from jinja2 import Environment, StrictUndefined

    from minnorm.figures.forest import forest_html, plot_forest

    png = tmp_path / "forest.png"
    plot_forest(pd.DataFrame(), png, tmp_path / "forest.pdf")
    png.with_suffix(".html").write_text(forest_html(png))
    source = (REPORT / "workflow.rst").read_text()
    env = Environment(undefined=StrictUndefined)
    record = SimpleNamespace(target="forest.png", path=png)
    for files, embedded in (([record], True), ([], False)):
        text = env.from_string(source).render(snakemake=SimpleNamespace(config={}), files=files)
        html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})["body"]
        assert "system-message" not in html
        assert ('src="data:image/png;base64,' in html) == embedded
        assert ("Look before reading" in html) == embedded


def test_one_value_per_width_draws_a_band_only_with_residual_degrees_of_freedom(
    widths_ds, tmp_path
):
    """Two widths with one run each leave nothing to estimate the noise from: no interval, no
    band. A third width gives one residual degree of freedom: an interval (wide) and a band."""
    from matplotlib.figure import Figure

    from minnorm.analysis.collect import WidthData
    from minnorm.figures.diagnostics import _scaling_panel

    for widths, bands in (([200.0, 400.0], 0), ([200.0, 400.0, 800.0], 1)):
        m = np.array(widths)
        values = 1.0 / m**0.25 * np.exp(0.05 * np.arange(m.size))
        data = WidthData(m, values, np.zeros(m.size), np.zeros(m.size))
        ax = Figure().subplots()
        fit = _scaling_panel(ax, data, (), "y", "t")
        assert fit.ci_defined == bool(bands)
        fills = [
            c
            for c in ax.collections
            if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")
        ]
        assert len(fills) == bands
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(("no CI" in t) != bool(bands) for t in legend if t.startswith("fit"))
    FIGURES["width_scaling"](widths_ds.isel(seed=[0]), tmp_path / "w.png", tmp_path / "w.pdf")
    _check_outputs(tmp_path, "w")


def test_forest_plot_draws_one_row_per_overall_estimate_with_its_draws(tmp_path):
    from minnorm.analysis.check_spec import ESTIMATE_COLUMNS
    from minnorm.figures.forest import forest_rows, plot_forest

    q = "exponent of ||W(T)-W*|| in m"
    rows = [
        ["a", "dist_to_target", "", "all", q, -0.33, -0.37, -0.29, "supported", "b"],
        ["a", "dist_to_target", "", "0", q, -0.31, -0.34, -0.29, "", "b"],
        ["a", "dist_to_target", "", "1", q, -0.35, -0.38, -0.31, "", "b"],
        [
            "b",
            "upper_exponent_quarter",
            "lr=0.1",
            "all",
            q + ", upper half",
            -0.5,
            -0.6,
            -0.4,
            "contradicted",
            "b",
        ],
        ["b", "gap", "", "all", "exponent of the gap", -0.5, -0.6, -0.4, "supported", "b"],
    ]
    estimates = pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)
    table = forest_rows(estimates)
    assert list(table.label) == ["a: all widths", "b: upper half, lr=0.1"]
    assert [len(d) for d in table.draws] == [2, 0]
    lines = plot_forest(estimates, tmp_path / "f.png", tmp_path / "f.pdf")
    assert lines == [
        "a: all widths (2 draws): -0.330 [-0.370, -0.290] supported",
        "b: upper half, lr=0.1: -0.500 [-0.600, -0.400] contradicted",
    ]
    _check_outputs(tmp_path, "f")
