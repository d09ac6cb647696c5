"""What the command line does when a setting is left out: tiny-shapes' own guidance and metric, and a resumed run
keeps what it ran with."""

import json

from ecad.cli import build_parser
from ecad.cli.evaluate import config_from_args as eval_config
from ecad.cli.search import config_from_args as search_config
from ecad.search import SearchConfig


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_search_guidance_defaults_to_the_models(tmp_path):
    new = ("--prompts", "tiny-shapes", "--out", str(tmp_path / "new"))
    assert search_config(parse("search", "--model", "tiny-shapes", *new)).guidance_scale == 3.0
    assert search_config(parse("search", "--model", "some/pixart", *new)).guidance_scale == 4.5
    assert search_config(parse("search", "--model", "tiny-shapes", "--guidance", "2", *new)).guidance_scale == 2.0
    # A tiny-shapes run started when the default was 4.5 resumes as it ran (not refused as a changed setting).
    old = tmp_path / "old"
    old.mkdir()
    config = SearchConfig(model="tiny-shapes", prompts=["a small red circle in the center"], guidance_scale=4.5)
    (old / "config.json").write_text(json.dumps(config.to_dict()))
    resumed = search_config(parse("search", "--model", "tiny-shapes", "--out", str(old), "--resume"))
    assert resumed.guidance_scale == 4.5 and resumed == config


def test_eval_metric_defaults_to_tiny_reward_on_tiny_shapes(tmp_path):
    common = ("--prompts", "tiny-shapes-heldout", "--out", str(tmp_path))
    assert eval_config(parse("eval", "--model", "tiny-shapes", *common)).metrics == ["tiny-reward"]
    assert eval_config(parse("eval", "--model", "some/pixart", *common)).metrics == ["fidelity"]
    assert eval_config(parse("eval", "--model", "tiny-shapes", "--metrics", "fidelity", *common)).metrics == [
        "fidelity"
    ]
