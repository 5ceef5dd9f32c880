"""The learning-rate grid: which rates to try, which one wins, and when to try one more.

A choice at the edge of a grid says only that the best rate may lie beyond it. So the sweep
starts from log-spaced multiples of the method's default (e.g. 0.5x, 1x, 2x) and, while the
best rate is the smallest or the largest tried, tries one more step further that way (the
ratio between the grid's two outermost rates on that side), until the best is interior, the
next rate diverges (it stays in the record as the bracket), or ``max_extensions`` steps were
taken on that side. This module is the search; experiment/jobs.py trains and scores a candidate.

A method is compared after it has learned its shots, so a rate whose run did not meet the
stopping rule (``converged`` false: the step cap came first) is not chosen while another rate
did learn; such a rate below the choice bounds the grid the way a diverged one bounds it above
(smaller rates learn slower still). Only when no rate learned is the best of the stable ones
chosen, and its runs are then flagged not converged in their records and counted in the tables.
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


def learned(candidate: dict) -> bool:
    """The candidate's run met the stopping rule (experiment/training.py) without diverging."""
    return bool(candidate.get("converged")) and not diverged(candidate)


def best(candidates: dict[float, dict]) -> float | None:
    """The rate with the highest dev accuracy among those that learned their shots, or, if none
    did, among those that did not diverge.

    Ties go to the middle of the tied rates: equal dev scores are a plateau, whose middle is the
    choice least sensitive to dev noise, and a flat stretch at an edge of the grid is no
    evidence that a better rate lies beyond it (so a tie at an edge does not extend the grid).
    Of two middle rates, the one nearer the middle of all rates tried wins, then the smaller."""
    stable = {rate: c for rate, c in candidates.items() if not diverged(c)}
    pool = {rate: c for rate, c in stable.items() if learned(c)} or stable
    if not pool:
        return None
    top = max(c["dev_accuracy"] for c in pool.values())
    tied = sorted(rate for rate, c in pool.items() if c["dev_accuracy"] == top)
    middle = tied[(len(tied) - 1) // 2: len(tied) // 2 + 1]  # one rate, or the two middle ones
    rates = sorted(candidates)
    centre = (len(rates) - 1) / 2
    return min(middle, key=lambda rate: (abs(rates.index(rate) - centre), rate))


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
    """How the choice is bounded: 'at edge' (the extensions ran out), else a rate tried on each
    side: 'diverged above' when the next larger rate diverged, 'not converged below' when the
    next smaller one did not learn its shots (both, comma-separated), or plainly 'interior'."""
    rates, chosen = sorted(candidates), best(candidates)
    if chosen is None:
        return "no rate trained"
    position = rates.index(chosen)
    if position in (0, len(rates) - 1):
        return "at edge"
    above, below = candidates[rates[position + 1]], candidates[rates[position - 1]]
    bounds = (["diverged above"] if diverged(above) else []) + (
        ["not converged below"] if learned(candidates[chosen]) and not diverged(below) and not learned(below) else [])
    return ", ".join(bounds) or "interior"


def search(train_and_score: Callable[[float], tuple[dict, Callable[[], Any]]], default: float, multipliers: list[float],
           max_extensions: int) -> tuple[dict[float, dict], Any]:
    """Try the initial grid, then extensions, one rate at a time. ``train_and_score(rate)``
    returns the candidate's record (``dev_accuracy``, ``losses``, ...) and a function that
    keeps what the caller needs of it; only the best candidate's is called and returned, so
    the caller holds one candidate at a time beside the best one's keepsake.

    A later candidate can move a tie's middle back to a rate trained earlier, whose keepsake
    was not kept; that rate is then trained once more (training is deterministic for a rate
    and seed), and a loss curve that differs from the first one's is an error."""
    queue = [(rate, None) for rate in initial_rates(default, multipliers)]
    candidates, kept_rate, kept = {}, None, None
    while queue:
        rate, extension = queue.pop(0)
        candidate, keep = train_and_score(rate)
        candidates[rate] = {**candidate, "extension": extension}
        if best(candidates) == rate:
            kept_rate, kept = rate, keep()
        del keep  # frees the candidate before the next one trains
        if not queue:
            following = next_rate(candidates, multipliers, max_extensions)
            if following is not None:
                queue.append((following, "lower" if following < min(candidates) else "higher"))
    chosen = best(candidates)
    if chosen is not None and chosen != kept_rate:
        kept = None  # the old keepsake goes before the retrained candidate arrives
        again, keep = train_and_score(chosen)
        if again.get("losses") != candidates[chosen].get("losses"):
            raise RuntimeError(f"learning rate {chosen} trained twice gave two loss curves ({candidates[chosen].get('losses')} "
                               f"then {again.get('losses')}): training is not deterministic on this machine")
        kept = keep()
    return candidates, kept
