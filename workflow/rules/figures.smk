# One rule per registered figure (minnorm.figures.FIGURES, named after the figure): each reads
# its experiment's collected file and writes PNG + PDF. The PNG goes into the report with the
# figure's caption (FigureSpec.caption, src/minnorm/figures/captions/<figure>.rst); the numbers
# the figure measured (<figure>.summary.html) can be included in that caption.

from minnorm.figures import FIGURES

for figure, spec in FIGURES.items():

    rule:
        name:
            figure
        input:
            # A figure the experiment does not list: one line naming the experiments that do.
            lambda w, figure=figure: known_target(w.exp, figure),
        output:
            png=report(
                f"results/{{exp}}/figures/{figure}.png",
                caption=str(spec.caption),
                category="Figures",
                subcategory="{exp}",
            ),
            pdf=f"results/{{exp}}/figures/{figure}.pdf",
            summary=f"results/{{exp}}/figures/{figure}.summary.html",
        log:
            f"results/{{exp}}/logs/figures/{figure}.log",
        # Before the checks of the same collected file: a figure job (seaborn's imports, two
        # renderings) takes 3-5 s, a checks job ~1 s, so the checks fill the other core after.
        priority: 1
        conda:
            CONDA_ENV
        params:
            figure=figure,
        script:
            "../scripts/plot_figure.py"
