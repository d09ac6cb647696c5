"""The latency the search optimises and the eval reports, measured on the compiled transformer (``--compile``).

dynamo's ``eager`` backend (or a counting one) keeps these fast: what is checked is that the timed calls run the
compiled graphs, with no graph break, and that the table says how it was measured; Inductor is exercised by the one
``slow`` test."""

import json
import shutil

import pytest
import torch
import torch._dynamo
from tiny_pipelines import tiny_pixart_pipeline
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

from ecad.cli import main
from ecad.cost.latency import measure_latency
from ecad.evaluation import EvalConfig, evaluate
from ecad.models.prompts import load_prompts
from ecad.runtime.compilation import CompileConfig

pytestmark = pytest.mark.compile


class RunCounter(CompileCounter):
    """Counts graphs compiled (``frame_count``) and graph executions (``runs``): the calls that really ran compiled."""

    def __init__(self):
        super().__init__()
        self.runs = 0

    def __call__(self, gm, example_inputs):
        super().__call__(gm, example_inputs)

        def run(*args):
            self.runs += 1
            return gm.forward(*args)

        return run


@pytest.mark.parametrize("scope", ["regional", "whole"])
@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)  # past the limit a frame would run eagerly, unseen
def test_latency_table_is_measured_on_the_compiled_transformer(scope):
    """Every timed block call (regional) or transformer call (whole) runs a compiled graph, with no graph break (the
    timers sit outside the compiled frames); the table records the scope and backend, and the model is eager after."""
    torch._dynamo.reset()
    counters.clear()
    pipe = tiny_pixart_pipeline(num_layers=2)
    counter = RunCounter()
    warmup, repeats = 1, 2
    table = measure_latency(
        pipe, 32, 32, guidance_scale=4.5, warmup=warmup, repeats=repeats, compile=CompileConfig(scope, counter)
    )
    assert not counters["graph_break"]
    assert counter.frame_count > 0
    steps = 1 + (2 + len(table.component_names)) * (warmup + repeats)  # step 0, then every measuring plan per round
    assert counter.runs == steps * (len(table.block_names) if scope == "regional" else 1)
    assert (table.compile_scope, table.compile_backend) == (scope, "RunCounter")
    assert table.compiled_as == f"{scope} (RunCounter)"
    assert bool((table.replay_seconds > 0).all()) and table.full_step_seconds > 0
    assert all(module._compiled_call_impl is None for module in pipe.transformer.modules())
    again = type(table).from_dict(json.loads(json.dumps(table.to_dict())))
    assert (again.compile_scope, again.compile_backend) == (scope, "RunCounter")
    eager = measure_latency(pipe, 32, 32, guidance_scale=4.5, warmup=1, repeats=1)
    assert (eager.compile_scope, eager.compile_backend, eager.compiled_as) == (None, None, "eager")
    assert counter.runs == steps * (len(table.block_names) if scope == "regional" else 1)  # nothing compiled ran


def search_args(model_dir, prompts, out, *extra):
    return [
        "search",
        "--model",
        str(model_dir),
        "--prompts",
        str(prompts),
        "--metric",
        "fidelity",
        "--population",
        "4",
        "--generations",
        "1",
        "--steps",
        "6",
        "--height",
        "16",
        "--width",
        "16",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--cost",
        "latency",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture()
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a w1 w2\nw3 w4\n")
    return path


@pytest.mark.slow
def test_search_measures_latency_compiled_and_a_resumed_run_keeps_it(tiny_model_dir, prompts, tmp_path, capsys):
    out = tmp_path / "run"
    torch._dynamo.reset()
    counters.clear()
    assert main(search_args(tiny_model_dir, prompts, out, "--compile", "--compile-backend", "eager")) == 0
    assert counters["stats"]["unique_graphs"] > 0 and not counters["graph_break"]
    table = json.loads((out / "latency.json").read_text())
    assert (table["compile_scope"], table["compile_backend"]) == ("regional", "eager")
    config = json.loads((out / "config.json").read_text())
    assert (config["compile"], config["compile_backend"]) == ("regional", "eager")
    # resumed without --compile: the run's setting is kept and its compiled table reused as it is
    assert main(search_args(tiny_model_dir, prompts, out, "--generations", "2", "--resume")) == 0
    assert json.loads((out / "latency.json").read_text()) == table
    # resumed asking for another compilation: refused, nothing changed
    capsys.readouterr()
    assert main(search_args(tiny_model_dir, prompts, out, "--generations", "3", "--resume", "--compile", "whole")) == 1
    assert "compile: 'regional' -> 'whole'" in capsys.readouterr().err
    # a table measured eager is not silently reused by a compiled run
    (out / "latency.json").write_text(json.dumps({**table, "compile_scope": None, "compile_backend": None}))
    assert main(search_args(tiny_model_dir, prompts, out, "--generations", "3", "--resume")) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ecad search: error:")]
    assert len(errors) == 1 and "was measured eager and this run measures latency regional (eager)" in errors[0]
    assert "delete it to measure again" in errors[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--compile", "--compile-backend", "inductorr"], "compile_backend must be a torch.compile backend such as"),
        (["--compile-backend", "eager"], "nothing is compiled: add --compile"),
        (["--compile", "--cost", "macs"], "add --cost latency or leave --compile out"),
    ],
)
def test_bad_compile_settings_are_one_line(tiny_model_dir, prompts, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(search_args(tiny_model_dir, prompts, out, *extra)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ecad search: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists() or not any(out.iterdir())


def test_an_unknown_compile_scope_is_refused_while_parsing(tiny_model_dir, prompts, tmp_path, capsys):
    assert main(search_args(tiny_model_dir, prompts, tmp_path / "run", "--compile", "partial")) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ecad search: error:")]
    assert len(errors) == 1 and "argument --compile: invalid choice: 'partial'" in errors[0]


@pytest.mark.slow
def test_eval_times_the_compiled_transformer_and_records_it(tiny_model_dir, tmp_path, capsys):
    """The timed calls run compiled (dynamo compiles during timing: the images before are generated eager), the
    environment says how; a rerun with ``--repeats 0`` reuses only latencies timed the same way."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a w1\n")
    out = tmp_path / "eval"
    common = dict(
        model=str(tiny_model_dir),
        prompts=load_prompts(str(prompts)),
        baselines=["fora:2"],
        metrics=["fidelity"],
        num_steps=6,
        height=16,
        width=16,
        batch_size=1,
        warmup=1,
        device="cpu",
    )
    torch._dynamo.reset()
    counters.clear()
    report = evaluate(EvalConfig(**common, repeats=1, compile="whole", compile_backend="eager"), out, progress=False)
    assert counters["stats"]["unique_graphs"] > 0 and not counters["graph_break"]
    assert report["environment"]["compiled"] == "whole (eager)"
    assert all("latency" in row and row["latency"]["transformer_median_s"] > 0 for row in report["results"])
    again = evaluate(EvalConfig(**common, repeats=0, compile="whole", compile_backend="eager"), out, progress=False)
    assert [r["latency"] for r in again["results"]] == [r["latency"] for r in report["results"]]
    eager = evaluate(EvalConfig(**common, repeats=0), out, progress=False)
    assert eager["environment"]["compiled"] == "eager" and not any("latency" in r for r in eager["results"])
    with pytest.raises(ValueError, match="nothing is compiled"):
        EvalConfig(**common, compile_backend="eager")


@pytest.mark.slow
@torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)
def test_latency_table_measured_with_inductor():
    """A real Inductor compile of a 1-block model's blocks: the measuring runs compile each block plan once and
    time the generated kernels."""
    if shutil.which("g++") is None and shutil.which("gcc") is None:
        pytest.skip("Inductor's CPU backend needs a C++ compiler (g++ or gcc) on PATH")
    torch._dynamo.reset()
    counters.clear()
    pipe = tiny_pixart_pipeline(num_layers=1)
    table = measure_latency(
        pipe, 32, 32, guidance_scale=4.5, warmup=1, repeats=1, compile=CompileConfig("regional", "inductor")
    )
    assert not counters["graph_break"] and counters["stats"]["unique_graphs"] > 0
    assert (table.compile_scope, table.compile_backend) == ("regional", "inductor")
    assert bool((table.full_block_seconds > 0).all())
