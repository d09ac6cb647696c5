"""Progress: ecad's loops show their own bars and leave the pipeline's bar as they found it; the search warms the
model up before its first candidate (plumbing: which calls happen, not how long they take)."""

from tiny_pipelines import tiny_pixart_pipeline

from ecad.evaluation import EvalConfig, evaluate
from ecad.generation import Calibration, CalibrationGenerator
from ecad.search import SearchConfig, build_evaluator


def test_the_calibration_generator_shows_images_and_restores_the_pipelines_bar(capsys):
    pipe = tiny_pixart_pipeline(num_layers=2)
    pipe.set_progress_bar_config(desc="the user's bar")
    generator = CalibrationGenerator(
        pipe, Calibration(("a w1", "w2", "w3 w4"), num_steps=4, height=16, width=16, batch_size=2)
    )
    capsys.readouterr()
    generator(None, progress=True)
    err = capsys.readouterr().err
    assert "images:" in err and "/3 [" in err and "img/s" in err  # a bar per image, not per step
    assert "the user's bar" not in err
    assert pipe._progress_bar_config == {"desc": "the user's bar"}
    generator(None)
    assert capsys.readouterr().err == ""


def test_eval_shows_progress_per_schedule_and_image(tiny_model_dir, tmp_path, capsys):
    config = EvalConfig(
        model=str(tiny_model_dir),
        prompts=["w5 w6", "a w7"],
        baselines=["fora:2"],
        num_steps=6,
        height=16,
        width=16,
        warmup=0,
        repeats=1,
        device="cpu",
    )
    evaluate(config, tmp_path / "eval")
    err = capsys.readouterr().err
    assert "schedules:" in err and "images:" in err and "img/s" in err and "metrics:" in err
    assert "latency rounds:" in err
    assert "/6 [" not in err  # no per-step bar of the pipeline (6 steps) from generating or the timed calls


def test_the_search_warms_up_with_a_short_uncached_call_before_the_first_candidate(
    tiny_model_dir, tmp_path, monkeypatch
):
    calls = []
    original = CalibrationGenerator._generate

    def spy(self, batch, num_steps=None):
        calls.append((num_steps or self.calibration.num_steps, self.handle is not None))
        return original(self, batch, num_steps)

    monkeypatch.setattr(CalibrationGenerator, "_generate", spy)
    config = SearchConfig(
        model=str(tiny_model_dir),
        prompts=["a w1 w2"],
        metric="fidelity",
        num_steps=6,
        height=16,
        width=16,
        device="cpu",
    )
    evaluator, layout, _ = build_evaluator(config, tmp_path)
    assert calls[0] == (2, False)  # the warm-up: 2 steps, no cache, before the reference and any candidate
    # the cost table's observed call (stopped after its first step), then fidelity's uncached reference
    assert calls[1:] == [(6, False), (6, False)]
    evaluator(layout.full_schedule(6))
    assert calls[3] == (6, True)
    evaluator.close()
