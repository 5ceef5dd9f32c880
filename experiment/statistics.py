"""Estimators for few seeds scored on one small shared test set.

Every run of a task is scored on the same test examples, and a seed draws the same training
shots for every method. An outcome table is therefore an S x n matrix (seeds x test examples)
of 0/1 scores, or of paired differences (-1, 0, 1) between two methods. Both the seeds and the
test examples are samples (of training shots and initialisations, and of the task's inputs),
and they are crossed: every seed meets every example. The mean of such a matrix has variance

    sigma_seed^2 / S + sigma_example^2 / n + sigma_residual^2 / (S n)

(Bouthillier et al., MLSys 2021: report both sources). The components are estimated from the
mean squares of the two-way layout without replication (the ANOVA, or method-of-moments,
estimator of a crossed random-effects model; equal to REML in this balanced layout while no
component is truncated at zero), and the interval is a t-interval with Welch-Satterthwaite
degrees of freedom. With no test-example component it is the t-interval over seeds. A percentile bootstrap
over 5 seed means would be narrower than this by a factor of about sqrt(4/5) x t/z and
undercover; a closed form needs no random numbers, so tables are reproducible bit for bit.

Tasks are averaged with equal weight and treated as independent strata: a seed draws each
task's shots separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

LEVEL = 0.95
POWER = 0.80


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and degrees of freedom; arrays broadcast (many tables at once)."""

    mean: np.ndarray
    se: np.ndarray
    df: np.ndarray
    seed_spread: np.ndarray
    """Sample variance of the per-seed means: zero when every seed gives the same value."""

    def interval(self, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """NaN where the SE is zero (every outcome the same, e.g. all runs scoring 0): a
        zero-width interval would claim a certainty that no finite sample gives."""
        half = np.where(self.se > 0, stats.t.ppf((1 + level) / 2, self.df) * self.se, np.nan)
        return self.mean - half, self.mean + half

    def p_value(self) -> np.ndarray:
        """Two-sided test of a zero mean, the inverse of ``interval``. None (NaN) where the seeds
        show no spread at all: five equal values do not measure the between-seed variance, and
        a test that reads them as zero variance (a paired t-test gives p ~ 1e-62) claims more
        than the runs show."""
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 2 * stats.t.sf(np.abs(self.mean) / self.se, self.df)
        return np.where((self.seed_spread > 0) & (self.se > 0), p, np.nan)

    def minimum_detectable(self, level: float = LEVEL, power: float = POWER) -> np.ndarray:
        """The smallest true mean that this design's test at ``level`` detects with probability
        ``power`` (Card et al., EMNLP 2020): (t_{(1+level)/2} + t_{power}) x SE."""
        mdd = (stats.t.ppf((1 + level) / 2, self.df) + stats.t.ppf(power, self.df)) * self.se
        return np.where(self.se > 0, mdd, np.nan)


def crossed_mean(outcomes: np.ndarray) -> Estimate:
    """Mean of a seeds x examples matrix (last two axes) with the variance of the crossed design.

    Mean squares of the two-way layout: rows (seeds, S - 1 df), columns (examples, n - 1 df),
    residual ((S - 1)(n - 1) df). Components: seed = (MS_seed - MS_res) / n, example =
    (MS_example - MS_res) / S, residual = MS_res, each truncated at zero (a negative estimate
    means 'no detectable component'). Needs two seeds or more."""
    x = np.asarray(outcomes, dtype=float)
    S, n = x.shape[-2:]
    if S < 2 or n < 2:
        raise ValueError(f"a crossed estimate needs at least 2 seeds and 2 examples, got {S} x {n}")
    grand = x.mean(axis=(-2, -1))
    seed_means, example_means = x.mean(axis=-1), x.mean(axis=-2)
    seed_spread, example_spread = seed_means.var(axis=-1, ddof=1), example_means.var(axis=-1, ddof=1)
    residual = x - seed_means[..., :, None] - example_means[..., None, :] + grand[..., None, None]
    ms_res = (residual**2).sum(axis=(-2, -1)) / ((S - 1) * (n - 1))
    ms_seed, ms_example = n * seed_spread, S * example_spread
    # Var(mean) * S n = a MS_seed + b MS_example + (1 - a - b) MS_res, a (b) = 1 where the
    # seed (example) component is kept, 0 where it is truncated.
    a = (ms_seed > ms_res).astype(float)
    b = (ms_example > ms_res).astype(float)
    terms = [(a * ms_seed, S - 1), (b * ms_example, n - 1), ((1 - a - b) * ms_res, (S - 1) * (n - 1))]
    variance_sn = sum(t for t, _ in terms)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = variance_sn**2 / sum(t**2 / d for t, d in terms)
    df = np.where(np.isfinite(df), df, S - 1.0)
    return Estimate(grand, np.sqrt(variance_sn / (S * n)), df, seed_spread)


def average(estimates: list[Estimate]) -> Estimate:
    """Equal-weight mean of independent estimates (one per task), Welch-Satterthwaite df."""
    k = len(estimates)
    variances = [e.se**2 / k**2 for e in estimates]
    with np.errstate(divide="ignore", invalid="ignore"):
        df = sum(variances) ** 2 / sum(v**2 / e.df for v, e in zip(variances, estimates))
    df = np.where(np.isfinite(df), df, np.minimum.reduce([e.df for e in estimates]))
    return Estimate(sum(e.mean for e in estimates) / k, np.sqrt(sum(variances)), df,
                    sum(e.seed_spread for e in estimates))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment over the tests that have a p-value; NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], method="holm")[1]
    return adjusted


def verdict(low: float, high: float, margin: float) -> str:
    """Whether an interval settles a difference at ``margin`` points: resolved where it lies
    wholly above +margin or below -margin (a difference larger than the margin) or wholly
    inside [-margin, +margin] (equivalent within the margin); not resolved otherwise. Whether
    it excludes 0 is said as well: that alone does not settle the margin."""
    if np.isnan(low) or np.isnan(high):
        return f"not resolved at {margin:g} points (no variation in the outcomes to measure a variance from)"
    if low > margin:
        return f"resolved at {margin:g} points (ahead by more than {margin:g})"
    if high < -margin:
        return f"resolved at {margin:g} points (behind by more than {margin:g})"
    if -margin <= low and high <= margin:
        return f"resolved at {margin:g} points (equivalent within ±{margin:g})"
    zero = "excludes 0" if low > 0 or high < 0 else "includes 0"
    return f"not resolved at {margin:g} points (the interval {zero})"
