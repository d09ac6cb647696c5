"""Which front schedule ecad suggests: the fastest within a stated quality loss of no caching, and why."""

import pytest

from ecad.search.suggest import calibration_note, generate_command, quality_floor, suggest


def row(file, speedup, quality):
    return {"file": file, "speedup": speedup, "quality": quality}


# A front as `ecad demo` writes it: front/000.json is the cheapest and useless (FORA-10 drawing noise).
FRONT = [
    row("front/000.json", 7.06, 0.001),
    row("front/001.json", 5.86, 0.150),
    row("front/002.json", 3.83, 0.737),
    row("front/003.json", 1.82, 0.756),
    row("front/004.json", 1.70, 0.769),
]


def test_the_suggestion_is_the_fastest_schedule_within_the_loss():
    chosen = suggest(FRONT, reference_quality=0.7687, max_loss=0.05)  # floor 0.7303
    assert chosen.row["file"] == "front/002.json" and chosen.within
    reason = chosen.reason("tiny-reward")
    assert "fastest" in reason and "5%" in reason and "0.7370" in reason and "0.7687" in reason
    assert "3.83x MAC speedup" in reason
    # a stricter bound moves to a slower, better schedule; a loose one to a faster, worse one
    assert suggest(FRONT, 0.7687, max_loss=0.01).row["file"] == "front/004.json"
    assert suggest(FRONT, 0.7687, max_loss=0.85).row["file"] == "front/001.json"


def test_without_a_schedule_within_the_loss_or_a_reference_the_best_quality_is_suggested():
    chosen = suggest(FRONT, reference_quality=0.95, max_loss=0.05)
    assert chosen.row["file"] == "front/004.json" and not chosen.within
    assert "no front schedule is within 5%" in chosen.reason("tiny-reward")
    unknown = suggest(FRONT, reference_quality=None)
    assert unknown.row["file"] == "front/004.json" and "not evaluated" in unknown.reason("tiny-reward")
    assert suggest([], 0.5) is None
    with pytest.raises(ValueError, match=">= 0"):
        suggest(FRONT, 0.5, max_loss=-0.1)


def test_the_loss_is_relative_so_negated_distances_work_too():
    assert quality_floor(0.8, 0.05) == pytest.approx(0.76)
    assert quality_floor(-48.0, 0.05) == pytest.approx(-50.4)  # -shape-FID: at most 5% larger distance
    fid_front = [
        row("front/000.json", 5.0, -80.0),
        row("front/001.json", 3.0, -50.0),
        row("front/002.json", 2.0, -48.5),
    ]
    assert suggest(fid_front, -48.0, 0.05).row["file"] == "front/001.json"


def test_calibration_note_only_when_cached_schedules_beat_no_caching():
    assert calibration_note(FRONT, 0.7687, 8, "tiny-reward") is not None  # front/004.json scores 0.769 > 0.7687
    note = calibration_note(FRONT, 0.7687, 8, "tiny-reward")
    assert "8 calibration rows" in note and "ecad eval" in note and "tiny-shapes-heldout" in note
    assert calibration_note(FRONT, 0.9, 8, "tiny-reward") is None
    assert calibration_note(FRONT, None, 8, "tiny-reward") is None


def test_the_generate_command_is_quoted_for_the_shell():
    command = generate_command("tiny-shapes", "runs/my run/front/002.json", "a small red circle")
    assert command == (
        "ecad generate --model tiny-shapes --schedule 'runs/my run/front/002.json' "
        "--prompt 'a small red circle' --out image.png"
    )
