"""Sessions (boots, `run --resume` invocations) as a level of the design: runs within sessions.

A campaign resumed after a reboot, or run in a VM over several boots, measures each driver in
several sessions.  An effect of the session on the *ratio* (rnull faster on this boot only: a
different memory layout, a different CPU frequency state) is not a driver effect, but a
round-level analysis would count every round of that session as independent evidence for it.

So, per point, the per-round log ratios y are treated as a one-way random-effects design with
sessions as groups: MS_between and MS_within from the ANOVA, the between-session variance
s2_b = max(0, (MS_b - MS_w) / n0) (n0 the usual effective group size), and the mean log ratio's
variance Var = s2_b / S + MS_w / N, with Satterthwaite's degrees of freedom.  With a balanced
design and s2_b > 0 this is exactly the t interval on the S session means (df S - 1); when the
sessions do not differ (s2_b = 0) it falls back to the round-level interval (df N - 1).  The F
test of MS_b / MS_w gives `p_between`; `between_share` = s2_b / (s2_b + s2_w).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._json import JsonDataclass

# A point whose ratio varies more between sessions than within them, clearly: flag it.
DOMINANT_SHARE = 0.5
DOMINANT_P = 0.01


@dataclass(frozen=True)
class SessionLevel(JsonDataclass):
    n_sessions: int
    n_rounds: int
    between_share: float  # share of the per-round log-ratio variance that is between sessions
    p_between: float  # F test: do sessions differ in their ratio?
    df: float  # of the session-level t (Satterthwaite)
    mean_log_ratio: float
    se: float  # of the mean log ratio, at the session level
    ratio: float  # exp(mean log ratio)
    p_value: float  # H0: ratio 1, at the session level
    p_equiv: float  # ratio TOST at the session level (alpha/2 per side, as significance.ratio_tost)
    ci_low: float  # ratio CI at the session level
    ci_high: float
    confidence: float

    def tost(self, margin: float) -> float:
        """Ratio TOST p-value against [1 - margin, 1 + margin] at the session level."""
        if not (math.isfinite(self.se) and self.se > 0):
            return math.nan
        p_upper = float(special.stdtr(self.df, (self.mean_log_ratio - math.log1p(margin)) / self.se))
        p_lower = float(special.stdtr(self.df, -(self.mean_log_ratio - math.log1p(-margin)) / self.se))
        return min(1.0, 2.0 * max(p_upper, p_lower))

    @property
    def dominated(self) -> bool:
        """The session effect dominates this point's variation (and is not chance)."""
        return self.between_share > DOMINANT_SHARE and self.p_between < DOMINANT_P


def session_level(
    log_ratios: Sequence[float],
    sessions: Sequence[Hashable],
    *,
    margin: float,
    confidence: float = 0.95,
) -> SessionLevel | None:
    """The session-level analysis of per-round log ratios; None with fewer than 2 sessions or
    no within-session replication."""
    y = np.asarray(log_ratios, dtype=float)
    if y.size != len(sessions):
        raise ValueError(f"{len(sessions)} sessions for {y.size} rounds")
    labels = {s: i for i, s in enumerate(dict.fromkeys(sessions))}
    groups = np.array([labels[s] for s in sessions])
    n_sessions, n = len(labels), y.size
    if n_sessions < 2 or n - n_sessions < 1:
        return None
    sizes = np.bincount(groups).astype(float)
    means = np.bincount(groups, weights=y) / sizes
    grand = float(y.mean())
    ms_between = float(np.sum(sizes * (means - grand) ** 2) / (n_sessions - 1))
    ms_within = float(np.sum((y - means[groups]) ** 2) / (n - n_sessions))
    n0 = (n - np.sum(sizes**2) / n) / (n_sessions - 1)
    var_between = max(0.0, (ms_between - ms_within) / n0)
    p_between = (
        float(special.fdtrc(n_sessions - 1, n - n_sessions, ms_between / ms_within))
        if ms_within > 0
        else (0.0 if ms_between > 0 else 1.0)
    )
    share = var_between / (var_between + ms_within) if var_between + ms_within > 0 else math.nan
    if var_between > 0:
        part_b = ms_between / (n_sessions * n0)
        part_w = ms_within * (1.0 / n - 1.0 / (n_sessions * n0))
        variance = part_b + part_w
        df = variance**2 / (part_b**2 / (n_sessions - 1) + part_w**2 / (n - n_sessions))
    else:  # sessions indistinguishable: the rounds are the replicates
        variance = float(y.var(ddof=1)) / n
        df = float(n - 1)
    nan = math.nan
    if not variance > 0:
        return SessionLevel(
            n_sessions, n, share, p_between, df, grand, nan, math.exp(grand), nan, nan, nan, nan, confidence
        )
    se = math.sqrt(variance)
    t_crit = float(special.stdtrit(df, 0.5 + confidence / 2.0))
    level = SessionLevel(
        n_sessions=n_sessions,
        n_rounds=n,
        between_share=share,
        p_between=p_between,
        df=df,
        mean_log_ratio=grand,
        se=se,
        ratio=math.exp(grand),
        p_value=float(min(1.0, 2.0 * special.stdtr(df, -abs(grand) / se))),
        p_equiv=nan,
        ci_low=math.exp(grand - t_crit * se),
        ci_high=math.exp(grand + t_crit * se),
        confidence=confidence,
    )
    return dataclasses.replace(level, p_equiv=level.tost(margin))
