"""The names ecad's options accept, in a module that imports nothing heavy.

The command line builds its parser (and answers ``--help``) from these without importing torch or diffusers; the
modules that implement each choice take their names from here, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

DTYPE_NAMES = ("float32", "float16", "bfloat16")
CONVENTIONS = ("full", "paper")  # MAC counting: attention core included, or the ECAD paper's numbers
COSTS = ("macs", "latency")  # the search's cost objective
COMPILE_SCOPES = ("regional", "whole")  # ecad.compile_transformer's scopes
EXECUTOR_NAMES = ("local", "ray")
# paper: the faithful reproduction, each candidate generated on its own; fast: the same evaluations with shared step
# prefixes computed once (ecad.search.prefix); race: fast, and the full calibration set spent only on candidates that
# can still enter the front (ecad.search.racing)
STRATEGIES = ("paper", "fast", "race")
ACTIONS = (
    "reuse",
    "reuse,forecast",
)  # what a search may do instead of recomputing: the paper's reuse, or also forecast
# Registered quality metrics (ecad.metrics.METRICS; a test keeps the two equal).
METRIC_NAMES = ("clip", "fid", "fidelity", "image-reward", "pickscore", "shape-fid", "tiny-reward")
# Other libraries' caches `ecad eval --baselines` takes (ecad.peers.PEERS; a test keeps the two equal).
PEER_NAMES = ("fbcache", "pab", "fastercache", "taylorseer-diffusers", "magcache", "dbcache", "dbcache-taylorseer")
# Built-in prompt sets (ecad.models.prompts.BUILTIN): tiny-shapes training captions (calibration) and held-out captions.
PROMPT_SETS = ("tiny-shapes", "tiny-shapes-heldout")
TINY_SHAPES = "tiny-shapes"  # the embedded model's name, accepted wherever a model is taken


def default_metric(model: str) -> str:
    """The metric ``ecad eval`` scores with when none is named: tiny-shapes' own reward model, else fidelity."""
    return "tiny-reward" if model == TINY_SHAPES else "fidelity"


def metric_columns(metric: str, scores: dict[str, float]) -> dict[str, float]:
    """A metric's numbers under the names every table, report and file shows: the metric's own number under the
    metric's name (``tiny-reward``, ``shape-fid``, ``fid``), every other one as ``metric.number``
    (``tiny-reward.match_rate``, ``fidelity.ssim``).

    ``quality`` repeats one of the named numbers, so it is shown only when it is the metric's only number.
    """
    named = {k: v for k, v in scores.items() if k != "quality"}
    if not named:
        return {metric: scores["quality"]}
    own = metric.replace("-", "_")
    return {metric if key == own else f"{metric}.{key}": value for key, value in named.items()}


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` with the known name nearest to a mistyped one (difflib's closest match), else ``""``.

    Example:
        >>> did_you_mean("tiny-reword", METRIC_NAMES)
        ' (did you mean tiny-reward?)'
    """
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
