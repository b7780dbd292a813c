import numpy as np
import pytest
import torch

from autocls.data import load_dataset, make_splits, prepare_data
from autocls.data.augment import BatchAugment, cutout, random_crop, random_flip
from autocls.errors import UserError
from tests.conftest import write_cifar10, write_cifar100, write_image_folder, write_tiny_imagenet


def test_cifar10_reads_the_official_pickles(tmp_path):
    write_cifar10(tmp_path, per_batch=20, test=30)
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.images.shape == (100, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.test_images.shape == (30, 3, 32, 32)
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    splits = make_splits(ds, val_fraction=0.2)
    assert len(splits.test_y) == 30  # the official test set is the test split
    assert len(splits.train_y) + len(splits.val_y) == 100


def test_cifar100_fine_and_coarse(tmp_path):
    write_cifar100(tmp_path)
    fine = load_dataset("cifar100", tmp_path, download=False)
    coarse = load_dataset("cifar100-coarse", tmp_path, download=False)
    assert len(fine.classes) == 100 and int(fine.labels.max()) == 99
    assert len(coarse.classes) == 20 and int(coarse.labels.max()) == 19
    assert torch.equal(coarse.labels, fine.labels // 5)


def test_tiny_imagenet_uses_val_annotations(tmp_path):
    write_tiny_imagenet(tmp_path, classes=4, per_class=6, val_per_class=2)
    ds = load_dataset("tiny-imagenet", tmp_path, download=False)
    assert ds.images.shape == (24, 3, 64, 64)
    assert ds.test_images.shape == (8, 3, 64, 64)
    assert sorted(ds.test_labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds.classes[1] == "thing 1"


def test_missing_cifar_offline_names_data_dir(tmp_path, monkeypatch):
    import autocls.data.sources as sources

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(UserError, match="--data-dir"):
        sources.load_cifar10(tmp_path / "nothing", download=True)


def test_real_cifar10_jpgs_as_image_folder(cifar10_jpg_subset):
    ds = load_dataset(str(cifar10_jpg_subset))
    assert len(ds.classes) == 10 and ds.images.shape[1:] == (3, 32, 32)
    assert len(ds.labels) == 2000
    assert np.bincount(ds.labels.numpy()).tolist() == [200] * 10
    again = load_dataset(str(cifar10_jpg_subset))  # second read comes from the decoded cache
    assert torch.equal(again.images, ds.images)


def test_splits_are_seeded_disjoint_and_stratified(tmp_path):
    a = prepare_data("digits", seed=3)
    b = prepare_data("digits", seed=3)
    c = prepare_data("digits", seed=4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.val_y, c.val_y)
    ds = load_dataset("digits")
    flat = ds.images.flatten(1)
    # disjoint: reconstruct indices by matching rows of the original array
    keys = {tuple(r.tolist()): i for i, r in enumerate(flat)}
    sets = [set(keys[tuple(r.tolist())] for r in part.flatten(1)) for part in (a.train_x, a.val_x, a.test_x)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    frac = np.bincount(a.val_y.numpy(), minlength=10) / np.bincount(ds.labels.numpy(), minlength=10)
    assert frac.min() > 0.05 and frac.max() < 0.12  # ~10% * 80% of every class


def test_split_file_is_reused(tmp_path):
    f = tmp_path / "split.npz"
    a = prepare_data("digits", seed=1, split_file=f)
    b = prepare_data("digits", seed=99, split_file=f)  # the saved split wins over a new seed
    assert torch.equal(a.val_y, b.val_y) and a.mean == b.mean


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'cifar11'"):
        load_dataset("cifar11")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "missing") + "/")
    write_image_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(UserError, match="only one class"):
        load_dataset(str(tmp_path / "one"))
    write_image_folder(tmp_path / "empty", classes=("a", "b"))
    (tmp_path / "empty" / "c").mkdir()
    with pytest.raises(UserError, match="class folder .*c' has no images"):
        load_dataset(str(tmp_path / "empty"))


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=5)
    (root / "a" / "broken.jpg").write_bytes(b"this is not a jpeg")
    (root / "b" / "truncated.png").write_bytes((root / "b" / "0.png").read_bytes()[:30])
    with pytest.warns(UserWarning, match="skipped 2 file"):
        ds = load_dataset(str(root))
    assert len(ds.labels) == 10


def test_batch_augmentations_are_per_sample():
    torch.manual_seed(0)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(32, 1, 1, 1)
    cropped = random_crop(x, 2)
    assert cropped.shape == x.shape
    assert len({tuple(c.flatten().tolist()) for c in cropped}) > 5  # different offsets per image
    flipped = random_flip(x)
    n_flipped = sum(bool(torch.equal(f, x[0].flip(-1))) for f in flipped)
    assert 4 < n_flipped < 28
    holes = cutout(torch.ones(16, 1, 8, 8), 4)
    zeros = (holes == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 25).all()
    aug = BatchAugment((0.5,), (0.5,), 1, True, 2, "randaugment", image_size=16)
    out = aug(torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8))
    assert out.shape == (10, 1, 16, 16) and out.dtype == torch.float32
