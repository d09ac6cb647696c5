"""The search's kept sample images (ecad.search.samples): what the report shows without loading the model."""

import torch

from ecad.search.samples import SampleStore


def images(n, value):
    return torch.full((n, 3, 8, 8), value)


def test_kept_images_come_back_as_written_and_only_when_enough_were_kept(tmp_path):
    store = SampleStore(tmp_path, kept=3)
    store.keep("20:ab", images(5, 0.5))
    store.keep("20:cd", images(1, 1.0))
    assert len(list((tmp_path / "samples").glob("*.png"))) == 4  # at most `kept` per schedule
    loaded = store.load("20:ab", 2)
    assert [im.size for im in loaded] == [(8, 8), (8, 8)]
    assert loaded[0].getpixel((0, 0)) == (128, 128, 128)  # 0.5 -> 128, lossless PNG
    assert store.load("20:cd", 2) is None  # only one was kept: the report generates these
    assert store.load("20:ab", 4) is None  # more than it keeps
    assert store.load("20:ef", 1) is None  # never evaluated


def test_retain_deletes_the_images_of_every_other_schedule(tmp_path):
    store = SampleStore(tmp_path)
    for key in ("20:ab", "20:cd", "20:ef"):
        store.keep(key, images(2, 0.25))
    store.retain(["20:cd"])
    assert store.load("20:cd", 2) is not None
    assert store.load("20:ab", 1) is None and store.load("20:ef", 1) is None
    assert len(list((tmp_path / "samples").glob("*.png"))) == 2
    SampleStore(tmp_path / "nothing").retain([])  # no samples directory yet: nothing to do
