"""How ``consortia run`` prints a GLM: the coefficient table a statistician expects, then the fit statistics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from components.core.glm.summary import GlmSummary


def print_glm(glm: GlmSummary, console: Console) -> None:
    low, high = (f"{100 * (1 - glm.confidence) / 2:g}%", f"{100 * (1 + glm.confidence) / 2:g}%")
    table = Table(title=f"{glm.family} GLM (coefficients on the standardised features)")
    table.add_column("coefficient", overflow="fold")
    for column in ("estimate", "SE", glm.statistic, "p", low, high):
        table.add_column(column, justify="right", no_wrap=True)
    for c in glm.coefficients:
        cells = (c.estimate, c.std_error, c.statistic, c.p_value, c.ci_low, c.ci_high)
        table.add_row(c.name, *(f"{value:.4g}" for value in cells))
    console.print(table)
    fit = "converged" if glm.converged else "[red]did not converge[/red]"
    console.print(
        f"{glm.n_rows} rows, {glm.df_residual} residual df, {fit} in {glm.iterations} iterations; deviance "
        f"{glm.deviance:.6g}, log-likelihood {glm.log_likelihood:.6g}, AIC {glm.aic:.6g}, scale {glm.scale:.4g}"
    )
