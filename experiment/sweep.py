"""The learning-rate grid: which rates to try, which one wins, and when to try one more.

A choice at the edge of a grid says only that the best rate may lie beyond it. So the sweep
starts from log-spaced multiples of the method's default (e.g. 0.5x, 1x, 2x) and, while the
best rate is the smallest or the largest tried, tries one more step further that way (the
ratio between the grid's two outermost rates on that side), until the best is interior, the
next rate diverges (it stays in the record as the bracket), or ``max_extensions`` steps were
taken on that side. This module is the search; experiment/jobs.py trains and scores a candidate.
"""

from __future__ import annotations

from typing import Any, Callable


def rounded(rate: float) -> float:
    return float(f"{rate:.3g}")


def initial_rates(default: float, multipliers: list[float]) -> list[float]:
    return sorted({rounded(default * m) for m in multipliers})


def loss_diverged(losses: list[float] | None) -> bool:
    """No loss curve (training failed: a non-finite loss or gradient), or a loss that ended
    above where it started: past the stable range."""
    return not losses or losses[-1] > losses[0]


def diverged(candidate: dict) -> bool:
    """A candidate past the stable range (``loss_diverged``), or one that has no dev score:
    never chosen, and a bracket for the sweep."""
    return candidate.get("dev_accuracy") is None or loss_diverged(candidate.get("losses"))


def best(candidates: dict[float, dict]) -> float | None:
    """The rate with the highest dev accuracy among those that did not diverge; ties go to
    the smaller rate (the gentler update, whatever the method)."""
    usable = [(c["dev_accuracy"], -rate, rate) for rate, c in candidates.items() if not diverged(c)]
    return max(usable)[2] if usable else None


def next_rate(candidates: dict[float, dict], multipliers: list[float], max_extensions: int) -> float | None:
    """The rate to try next, or None when the choice is settled. Each extension steps by the
    initial grid's outermost ratio on that side (a grid of one rate is never extended)."""
    rates, chosen, steps = sorted(candidates), best(candidates), sorted(multipliers)
    if chosen is None or len(steps) < 2:
        return None
    taken = [c.get("extension") for c in candidates.values()]
    if chosen == rates[0] and taken.count("lower") < max_extensions:
        return rounded(rates[0] * steps[0] / steps[1])
    if chosen == rates[-1] and taken.count("higher") < max_extensions:
        return rounded(rates[-1] * steps[-1] / steps[-2])
    return None


def bracket(candidates: dict[float, dict]) -> str:
    """How the choice is bounded: 'interior' (a rate tried on each side), 'diverged above'
    (interior, and the next larger rate diverged), or 'at edge' (the extensions ran out)."""
    rates, chosen = sorted(candidates), best(candidates)
    if chosen is None:
        return "no rate trained"
    position = rates.index(chosen)
    if position in (0, len(rates) - 1):
        return "at edge"
    return "diverged above" if diverged(candidates[rates[position + 1]]) else "interior"


def search(train_and_score: Callable[[float], tuple[dict, Callable[[], Any]]], default: float, multipliers: list[float],
           max_extensions: int) -> tuple[dict[float, dict], Any]:
    """Try the initial grid, then extensions, one rate at a time. ``train_and_score(rate)``
    returns the candidate's record (``dev_accuracy``, ``losses``, ...) and a function that
    keeps what the caller needs of it; only the best candidate's is called and returned, so
    the caller holds one candidate at a time beside the best one's keepsake."""
    queue = [(rate, None) for rate in initial_rates(default, multipliers)]
    candidates, kept = {}, None
    while queue:
        rate, extension = queue.pop(0)
        candidate, keep = train_and_score(rate)
        candidates[rate] = {**candidate, "extension": extension}
        if best(candidates) == rate:
            kept = keep()
        del keep  # frees the candidate before the next one trains
        if not queue:
            following = next_rate(candidates, multipliers, max_extensions)
            if following is not None:
                queue.append((following, "lower" if following < min(candidates) else "higher"))
    return candidates, kept
