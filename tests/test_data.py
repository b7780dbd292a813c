from pathlib import Path

import numpy as np
import pytest
import torch

from autocls.data import load_dataset, make_splits, prepare_data
from autocls.data.augment import BatchAugment, cutout, random_crop, random_flip
from autocls.errors import UserError
from tests.conftest import write_cifar10, write_cifar100, write_digits_folder, write_image_folder, write_tiny_imagenet


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


def test_train_test_val_folders_are_the_splits(tmp_path):
    """Regression: root/{train,test} was read as a 2-class problem named 'test' and 'train'."""
    write_image_folder(tmp_path / "ds" / "train", classes=("cat", "dog"), per_class=6)
    write_image_folder(tmp_path / "ds" / "test", classes=("cat", "dog"), per_class=3)
    ds = load_dataset(str(tmp_path / "ds"))
    assert ds.classes == ["cat", "dog"] and len(ds.labels) == 12 and len(ds.test_labels) == 6 and ds.val_images is None
    s = make_splits(ds, val_fraction=0.2)
    assert len(s.test_y) == 6 and len(s.train_y) + len(s.val_y) == 12
    write_image_folder(tmp_path / "ds" / "val", classes=("cat", "dog"), per_class=2)
    s = make_splits(load_dataset(str(tmp_path / "ds")))
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (12, 4, 6)
    write_image_folder(tmp_path / "ds" / "test", classes=("cow",), per_class=1)
    with pytest.raises(UserError, match="class folder.*'cow'.* lacks"):
        load_dataset(str(tmp_path / "ds"))


def test_train_and_val_folders_are_the_splits_and_unlabeled_images_are_left_out(tmp_path):
    """Regression: root/{train,val} (PyTorch's ants-and-bees tutorial data) was read as a 2-class problem named
    'train' and 'val'; a Kaggle competition's unlabeled test/ beside train/ was "'test' has no images"."""
    write_image_folder(tmp_path / "ds" / "train", classes=("ants", "bees"), per_class=10)
    write_image_folder(tmp_path / "ds" / "val", classes=("ants", "bees"), per_class=3)
    ds = load_dataset(str(tmp_path / "ds"))
    assert ds.classes == ["ants", "bees"] and ds.name == "ds" and len(ds.labels) == 20 and len(ds.val_labels) == 6
    s = make_splits(ds)
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (16, 6, 4)  # test carved from train/, val/ kept whole

    write_image_folder(tmp_path / "kaggle" / "train", classes=("cat", "dog"), per_class=6)
    write_image_folder(tmp_path / "kaggle", classes=("test",), per_class=4)  # test/<image>, no classes
    with pytest.warns(UserWarning, match="test' has no class folders, so its images have no labels: left out"):
        ds = load_dataset(str(tmp_path / "kaggle"))
    assert ds.classes == ["cat", "dog"] and len(ds.labels) == 12 and ds.test_images is None


def test_an_unpacked_archives_lone_folder_is_looked_through_and_macosx_is_no_class(tmp_path):
    """Regression: a Mac's zip of flowers/ unpacked to flowers/ and __MACOSX/ (its files' metadata) was two classes,
    'flowers' and '__MACOSX'; unpacked into a folder of its own name, flowers/flowers/, it was "only one class"."""
    root = tmp_path / "unzipped"
    write_image_folder(root / "flowers", classes=("daisy", "rose"), per_class=4)
    (root / "__MACOSX" / "flowers" / "daisy").mkdir(parents=True)
    (root / "__MACOSX" / "flowers" / "daisy" / "._0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(100))
    # said, as the lone folder may be a class of the user's, its subfolders years or places
    with pytest.warns(UserWarning, match=r"'.*unzipped' holds one folder, 'flowers': its 2 folders are the classes "
                                         r"\(daisy, rose\)"):
        ds = load_dataset(str(root))
    assert ds.classes == ["daisy", "rose"] and len(ds.labels) == 8 and ds.name == "unzipped"
    write_image_folder(tmp_path / "archive" / "flowers" / "flowers", classes=("daisy", "rose"), per_class=4)
    with pytest.warns(UserWarning, match=r"'.*archive' holds one folder, 'flowers/flowers': its 2 folders"):
        assert load_dataset(str(tmp_path / "archive")).classes == ["daisy", "rose"]
    write_image_folder(tmp_path / "classes_zipped", classes=("daisy", "rose"), per_class=4)
    (tmp_path / "classes_zipped" / "__MACOSX" / "daisy").mkdir(parents=True)
    assert load_dataset(str(tmp_path / "classes_zipped")).classes == ["daisy", "rose"]


def test_copies_of_an_image_stay_on_one_side_of_the_split(tmp_path):
    """Regression: a photo saved twice (``3 (1).png``) was split apart as often as not, and the copy of a training
    image scored on val or test as one never seen; a dataset's own test/ holding copies went unsaid."""
    import shutil

    from autocls.data.splits import stratified_split

    root = write_image_folder(tmp_path / "ds" / "train", classes=("a", "b"), per_class=30)
    for i in range(10):  # ten photos saved again in their class, two filed under the other class too
        shutil.copy(root / "a" / f"{i}.png", root / "a" / f"{i} (1).png")
    for i in range(2):
        shutil.copy(root / "a" / f"{i}.png", root / "b" / f"from-a-{i}.png")
    with pytest.warns(UserWarning, match=r"12 images have the same pixels as another \(2 of them under another"):
        s = make_splits(load_dataset(str(root)), val_fraction=0.2, seed=1)
    sides = {}
    for side, images in (("train", s.train_x), ("val", s.val_x), ("test", s.test_x)):
        for image in images:
            sides.setdefault(image.numpy().tobytes(), set()).add(side)
    assert len(s.train_y) + len(s.val_y) + len(s.test_y) == 72 and len(s.test_y) >= 12
    assert all(len(where) == 1 for where in sides.values())  # no image's pixels on two sides
    labels = np.array([0] * 30 + [1] * 30)  # no copies: the split is the one made without groups
    assert all((a == b).all() for a, b in zip(stratified_split(labels, 0.2, 0, np.arange(60)),
                                              stratified_split(labels, 0.2, 0)))

    write_image_folder(tmp_path / "ds" / "test", classes=("a", "b"), per_class=3)  # the same pixels as train's 0-2
    with pytest.warns(UserWarning, match="6 of the 6 images of ds's own test split: the same pixels as a training"):
        make_splits(load_dataset(str(tmp_path / "ds")))


def test_16_bit_pngs_keep_their_values(tmp_path):
    """Regression: 16-bit PNGs were clipped to 255 (1000 and 32768 decoded alike)."""
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for j, value in enumerate((1000, 32768, 65535)):
            Image.fromarray(np.full((8, 8), value, dtype=np.uint16)).save(tmp_path / "d" / c / f"{j}.png")
    ds = load_dataset(str(tmp_path / "d"))
    pixels = ds.images[:3, 0, 0, 0].tolist()
    assert pixels == [4, 128, 255]


def test_a_folder_of_grayscale_images_decodes_to_one_channel(tmp_path, monkeypatch):
    """Regression: grayscale PNGs decoded as three equal channels, three times the memory (and two of a whitening
    layer's three directions a pixel without variance)."""
    from PIL import Image

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    digits = write_digits_folder(tmp_path / "digits", per_class=[4] * 10)
    gray = load_dataset(str(digits))
    assert gray.images.shape[1:] == (1, 8, 8) and gray.images.float().std() > 0
    assert torch.equal(load_dataset(str(digits)).images, gray.images)  # read back from the cache, one channel still
    assert load_dataset(str(write_image_folder(tmp_path / "photos"))).images.shape[1] == 3
    Image.fromarray(np.full((8, 8, 3), (255, 0, 0), dtype=np.uint8)).save(digits / "0" / "red.png")
    colour = load_dataset(str(digits))  # one colour image makes a colour folder
    assert colour.images.shape[1] == 3
    others = torch.cat([colour.images[:4], colour.images[5:]])  # class 0's fifth file is the red one
    assert all(torch.equal(others[:, c], gray.images[:, 0]) for c in range(3))


def test_the_decoded_cache_stays_out_of_the_dataset(tmp_path, monkeypatch):
    """Regression: the cache was written to <root>/.autocls-cache, which ImageFolder then listed as a class."""
    from torchvision.datasets.folder import find_classes

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOCLS_CACHE_MAX_GB", str(3000 / 2**30))  # room for about one small entry
    root = write_image_folder(tmp_path / "ds", classes=("a", "b"), per_class=4)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    first = load_dataset(str(root))
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert find_classes(str(root))[0] == ["a", "b"]
    entries = list((tmp_path / "cache" / "image-folders").iterdir())
    assert len(entries) == 1
    assert torch.equal(load_dataset(str(root)).images, first.images)  # read back from the cache
    for j in range(3):  # every change of the folder makes a new entry; the bound evicts the oldest
        write_image_folder(root, classes=("a",), per_class=5 + j)
        load_dataset(str(root))
    assert len(list((tmp_path / "cache" / "image-folders").iterdir())) < 4


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's own memory from Linux's /proc")
def test_a_cached_folder_is_read_memory_mapped_not_held_in_the_processs_own_memory(tmp_path):
    """A search on 5,000 photos of 256 px held them whole in its main process and in each trial's worker, which
    train at 32 px: the cache entry (one .npz) was read whole.  Now the first decode writes the entry a chunk at a
    time and every load maps it: the pixels are the OS's file cache, and a split at 32 px copies out 1/64 of them."""
    import os
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    for c in "ab":
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(100):  # 157 MB of pixels: far more than what the split's code itself takes
            photo = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
            Image.fromarray(photo).save(tmp_path / "photos" / c / f"{i}.bmp")  # 10x faster to write than PNG
    script = """
import sys
import sklearn.model_selection  # imported by the split: its memory is not the data's
import torch
from autocls.data import load_dataset
from autocls.data.augment import shrunk
from autocls.data.splits import make_splits

shrunk(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), 32)  # the resize's modules loaded before the count starts


def anonymous():  # the process's own resident memory, not pages of files the OS can drop and read again
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon:")).split()[1]) * 1024


before = anonymous()
raw = load_dataset(sys.argv[1])
pixels, loaded = raw.images.nbytes, anonymous() - before
data = make_splits(raw, image_size=32)
assert data.train_x.shape[-1] == 32
print(loaded / pixels, (anonymous() - before) / pixels)  # raw still alive
"""
    env = {**os.environ, "AUTOCLS_CACHE": str(tmp_path / "cache")}
    for reading in ("decoded", "from the cache"):
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "photos")], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        loaded, split = map(float, proc.stdout.split())
        # read whole they were 1.0 and over 1.0; what is left is the allocator keeping some of the decode's buffers
        assert loaded < 0.3 and split < 0.7, (reading, loaded, split)


def test_a_cache_entry_holds_what_decoding_gives_and_its_damage_is_decoded_again(tmp_path, monkeypatch):
    import os

    from autocls.data import sources

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    root = write_image_folder(tmp_path / "ds", classes=("a", "b", "c"), per_class=5)
    (root / "b" / "broken.png").write_bytes(b"not a png")  # a row of the entry is left unused
    with pytest.warns(UserWarning, match="skipped 1 file"):
        first = load_dataset(str(root))
    files = sorted(p for p in root.rglob("*.png") if p.name != "broken.png")
    assert torch.equal(first.images, sources.decode_images(files, (16, 16))[0])
    assert first.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    again = load_dataset(str(root))
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    again.images[0] += 1  # copy-on-write: a run that writes into its images leaves the entry as it was
    assert torch.equal(load_dataset(str(root)).images, first.images)

    (entry,) = (tmp_path / "cache" / "image-folders").iterdir()
    damaged = (entry / "images.npy").read_bytes()[:200]  # cut short, as by a crash before the data reached disk
    (entry / "images.npy").unlink()  # a new file: cutting the mapped one short under the tensors above kills the test
    (entry / "images.npy").write_bytes(damaged)
    with pytest.warns(UserWarning, match="skipped 1 file"):
        assert torch.equal(load_dataset(str(root)).images, first.images)
    assert len(np.load(entry / "images.npy")) == 16  # decoded and written again

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:  # a cache this user may only read: used as it is
        m.setattr(os, "utime", denied)
        m.setattr(sources, "decode_images", denied)
        assert torch.equal(load_dataset(str(root)).images, first.images)

    real = sources._read_entry
    calls = []

    def as_if_another_process_wrote_it_meanwhile(path):
        calls.append(path)
        return None if len(calls) == 1 else real(path)

    monkeypatch.setattr(sources, "_read_entry", as_if_another_process_wrote_it_meanwhile)
    with pytest.warns(UserWarning, match="skipped 1 file"):  # decoded here too
        assert torch.equal(load_dataset(str(root)).images, first.images)  # the other's entry is read, ours deleted
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


def test_an_unwritable_cache_decodes_into_memory_and_no_entry_is_left_half_written(tmp_path, monkeypatch):
    import os

    from autocls.data import sources

    root = write_image_folder(tmp_path / "ds", classes=("a", "b"), per_class=4)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "not-a-folder"))
    assert load_dataset(str(root)).images.shape == (8, 3, 16, 16)

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "image-folders"
    folder.mkdir(parents=True)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(sources, "decode_images", interrupted)
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C while decoding
            load_dataset(str(root))
    assert not list(folder.iterdir())
    old = folder / "0123456789abcdef01234567.npz"  # an entry of an earlier version, well inside the bound
    old.write_bytes(b"\0" * 100)
    killed = folder / ".0123456789abcdef01234567.x1y2"  # the entry a killed process was writing, a day ago
    killed.mkdir()
    (killed / "images.npy").write_bytes(b"\0" * 100)
    os.utime(killed, (0, 0))
    writing = folder / ".fedcba9876543210fedcba98.a1b2"  # one being written now
    writing.mkdir()
    load_dataset(str(root))
    assert sorted(p.name.startswith(".") for p in folder.iterdir()) == [False, True]
    assert not old.exists() and not killed.exists() and writing.exists()


def test_a_decode_whose_cache_entry_cannot_be_saved_is_kept_not_decoded_and_warned_again(tmp_path, monkeypatch):
    """Regression: a folder decoded into the cache whose labels then failed to save (a full disk) was decoded a
    second time into memory, and its skipped files were warned of twice."""
    import errno
    import warnings

    from autocls.data import sources

    root = write_image_folder(tmp_path / "ds", classes=("a", "b"), per_class=4)
    (root / "a" / "broken.jpg").write_bytes(b"this is not a jpeg")
    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    decodes, save, decode_images = [], np.save, sources.decode_images

    def full_disk(path, *args, **kwargs):
        if Path(path).name == "labels.npy":
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(path, *args, **kwargs)

    def counted(files, *args, **kwargs):
        decodes.append(len(files))
        return decode_images(files, *args, **kwargs)

    with monkeypatch.context() as m, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.setattr(np, "save", full_disk)
        m.setattr(sources, "decode_images", counted)
        ds = load_dataset(str(root))
    assert decodes == [9] and [str(w.message) for w in caught].count(
        "skipped 1 file that is not a readable image: " + str(root / "a" / "broken.jpg")) == 1
    assert not list((tmp_path / "cache" / "image-folders").iterdir())  # nothing half-written left
    with pytest.warns(UserWarning, match="skipped 1 file"):
        again = load_dataset(str(root))  # now cached
    assert torch.equal(ds.images, again.images) and torch.equal(ds.labels, again.labels) and len(ds.labels) == 8


def test_split_file_refuses_changed_contents(tmp_path):
    """Regression: an edited folder of the same size gave misaligned labels silently."""
    root = write_image_folder(tmp_path / "ds", classes=("a", "b"), per_class=6)
    split = tmp_path / "split.npz"
    make_splits(load_dataset(str(root)), split_file=split)
    make_splits(load_dataset(str(root)), split_file=split)  # unchanged: fine
    (root / "a" / "0.png").rename(root / "b" / "moved.png")  # same count, other labels
    with pytest.raises(UserError, match="made for other contents"):
        make_splits(load_dataset(str(root)), split_file=split)


def test_cifar_files_are_unpickled_with_a_restricted_unpickler(tmp_path):
    import pickle

    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(tmp_path / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({"label_names": Evil()}, f)
    with pytest.raises(UserError, match="not an official CIFAR file"):
        load_dataset("cifar10", tmp_path, download=False)
    assert not (tmp_path / "pwned").exists()


def test_decompression_bombs_and_unreadable_roots(tmp_path, monkeypatch):
    import struct
    import zlib

    root = write_image_folder(tmp_path / "ds", classes=("a", "b"), per_class=4)
    # a valid PNG header that claims 20000 x 20000 pixels
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    (root / "a" / "bomb.png").write_bytes(bomb + b"\0" * 64)
    with pytest.warns(UserWarning, match="skipped 1 file"):
        ds = load_dataset(str(root))
    assert len(ds.labels) == 8

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(root), "iterdir", denied)
    with pytest.raises(UserError, match="cannot read dataset folder"):
        load_dataset(str(root))


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


def test_a_small_split_is_passed_over_several_times_an_epoch():
    from autocls.data.loader import DeviceLoader, passes_per_epoch

    assert [passes_per_epoch(n, 45_000) for n in (5_000, 40_000, 45_000, 100_000)] == [9, 1, 1, 1]
    assert passes_per_epoch(5_000, 0) == 1
    # Regression: a folder of 40 images was passed over 1,125 times an epoch; on 500 photos, 90 passes an epoch
    # took 18 minutes a 24-epoch trial on 2 CPU cores and scored no better than 30 in 7 (MAX_PASSES_PER_EPOCH)
    assert [passes_per_epoch(n, 45_000) for n in (40, 500, 1_500, 2_000)] == [30, 30, 30, 22]
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    labels = torch.arange(20) % 2
    loader = DeviceLoader(images, labels, 10, BatchAugment((0.0,), (1 / 255,), 0, False), torch.device("cpu"), passes=3)
    seen = torch.cat([x[:, 0, 0, 0] for x, _ in loader]).round().long()  # the images' own numbers
    assert len(loader) == 6 and torch.equal(torch.bincount(seen, minlength=20), torch.full((20,), 3))
    # every pass is a whole permutation: no image twice before all were seen once
    assert all(len(set(seen[i:i + 20].tolist())) == 20 for i in (0, 20, 40))


def test_large_photos_are_kept_with_a_shorter_side_of_256(tmp_path):
    """12-megapixel photos would be 36 MB each in memory: a folder is decoded at 256 px on its shorter side."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "big" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (400, 600, 3), dtype=np.uint8)).save(tmp_path / "big" / c / f"{i}.jpg")
    assert load_dataset(str(tmp_path / "big")).images.shape == (6, 3, 256, 384)


def test_splitting_photos_takes_about_twice_their_memory(tmp_path):
    """Regression: the train mean and std were taken over all the training images in float64 at once (and a
    reshaped copy), so splitting 5,000 photos of 256 px (1 GB of pixels) peaked at 13 GB: 11x the pixels' size
    over the images themselves.  The split's copies are the pixels' size; the statistics add 64 MB at most."""
    import subprocess
    import sys

    script = """
import resource, sys, numpy as np, torch
import sklearn.model_selection  # imported by the split: its memory is not the split's
from autocls.data.registry import RawDataset
from autocls.data.splits import make_splits
images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2000, 3, 128, 128), dtype=np.uint8))
raw = RawDataset("photos", images, torch.arange(2000) % 4, ["a", "b", "c", "d"])
raw.fingerprint()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
splits = make_splits(raw, split_file=sys.argv[1])
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / images.nbytes
print(grown)
"""
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "split.npz")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout) < 2.5  # the split's copies (1x) and 64 MB of float64 at a time (0.65x here); it was 11x


def test_channel_stats_are_those_of_all_the_chosen_pixels_at_once():
    from autocls.data.splits import channel_stats

    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3000, 3, 40, 40), dtype=np.uint8))
    chosen = np.arange(0, 3000, 3)
    x = images[torch.from_numpy(chosen)].double().div(255).transpose(0, 1).reshape(3, -1)
    mean, std = channel_stats(images, chosen)
    assert np.allclose(mean, x.mean(1).numpy(), rtol=0, atol=1e-12)
    assert np.allclose(std, x.std(1).numpy(), rtol=0, atol=1e-12)


def test_decoding_a_folder_holds_its_pixels_once(tmp_path):
    """Regression: decoding kept every image in a list and then their stack, twice the pixels' size at its peak."""
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    script = """
import resource, sys
from pathlib import Path
from PIL import Image
from autocls.data.sources import decode_images
files = sorted(Path(sys.argv[1]).glob("*.png"))
Image.open(files[0]).convert("RGB").load()  # Pillow's decoders loaded before the count starts
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images, read = decode_images(files, (256, 256))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / images.numel(), len(read))
"""
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    grown, read = proc.stdout.split()
    assert int(read) == 300 and float(grown) < 1.5, grown  # it was 2.0


def test_a_split_at_a_runs_image_size_holds_the_same_images_shrunk(tmp_path):
    """A trial of the CPU preset trains at 32 px: its worker held 256-px photos whole (64x the pixels it trains
    on) and shrank a copy each trial.  The split at ``image_size`` is the full one's, shrunk once."""
    from autocls.data.augment import shrunk
    from autocls.data.registry import RawDataset

    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (120, 3, 48, 40), dtype=np.uint8))
    raw = RawDataset("photos", images, torch.arange(120) % 3, ["a", "b", "c"])
    full = make_splits(raw, split_file=tmp_path / "split.npz")
    small = make_splits(raw, split_file=tmp_path / "split.npz", image_size=16)  # the split file made at full size
    assert small.image_shape == (3, 16, 16) and small.source_shape == full.source_shape == (3, 48, 40)
    assert (small.mean, small.std) == (full.mean, full.std)  # the statistics of the images as loaded
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(small, f"{part}_y"), getattr(full, f"{part}_y"))
        assert torch.equal(getattr(small, f"{part}_x"), shrunk(getattr(full, f"{part}_x"), 16))
    assert make_splits(raw, image_size=64).image_shape == (3, 48, 40)  # never enlarged: the batches are


def test_a_trial_worker_holds_its_data_at_the_trials_image_size(tmp_path):
    from autocls.artifacts import ArtifactStore
    from autocls.search.trainable import _cached_data
    from autocls.training import Runtime, TrainConfig

    prepare_data("digits", split_file=tmp_path / "split.npz")
    store = ArtifactStore(tmp_path)
    data = _cached_data(TrainConfig(image_size=4), Runtime(dataset="digits"), store, "split.npz")
    assert data.image_shape == (1, 4, 4) and data.source_shape == (1, 8, 8)
    assert _cached_data(TrainConfig(), Runtime(dataset="digits"), store, "split.npz").image_shape == (1, 8, 8)


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path, monkeypatch):
    """Regression: a phone's portrait photo, stored on its side with EXIF orientation 6, was decoded on its side
    (as torchvision's loader does), so one class's photos lay three ways in the folder and at ``predict``.  And a
    malformed EXIF block does not make a photo unreadable."""
    from PIL import Image

    from autocls.data.sources import decode_images

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    upright = np.zeros((64, 48, 3), dtype=np.uint8)  # portrait, 48 wide and 64 high: its top half bright
    upright[:32] = 255
    stored_on_its_side = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 64 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    for c in ("phone", "plain"):
        (tmp_path / "d" / c).mkdir(parents=True)
    for i in range(3):
        stored_on_its_side.save(tmp_path / "d" / "phone" / f"{i}.jpg", quality=95, exif=exif)
        Image.fromarray(255 - upright).save(tmp_path / "d" / "plain" / f"{i}.jpg", quality=95)
    ds = load_dataset(str(tmp_path / "d"))
    assert ds.images.shape == (6, 3, 64, 48)  # the upright size of every photo
    phone = ds.images[ds.labels == ds.classes.index("phone")].float()
    assert phone[:, :, :32].mean() > 240 and phone[:, :, 32:].mean() < 15
    # as predict decodes, at another size (a JPEG drafted at its stored orientation, then turned)
    x, read = decode_images([tmp_path / "d" / "phone" / "0.jpg"], (12, 16))
    assert read == [0] and x.shape == (1, 3, 16, 12)
    assert x[0, :, :8].float().mean() > 240 and x[0, :, 8:].float().mean() < 15

    Image.fromarray(upright).save(tmp_path / "broken.jpg", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7fbroken")
    x, read = decode_images([tmp_path / "broken.jpg"], (48, 64))
    assert read == [0] and x[0, :, :32].float().mean() > 240


def test_photos_of_the_other_orientation_are_squashed_whole_to_the_common_size(tmp_path, monkeypatch):
    """A folder of landscape and portrait photos decodes at the common (landscape) size with each portrait squashed,
    every row of it kept: on real photos a centre crop lost 5.9 points on the portraits (benchmarks/aspect_ratio.py)."""
    from PIL import Image

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    portrait = np.full((48, 32, 3), 128, dtype=np.uint8)  # 32 wide, 48 high: red top rows, blue bottom rows
    portrait[:6] = (255, 0, 0)
    portrait[-6:] = (0, 0, 255)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((32, 48, 3), 60 * i, dtype=np.uint8)).save(tmp_path / "d" / c / f"{i}.png")
    Image.fromarray(portrait).save(tmp_path / "d" / "a" / "tall.png")
    ds = load_dataset(str(tmp_path / "d"))
    assert ds.images.shape == (7, 3, 32, 48)
    tall = ds.images[3].int()  # class a's files sorted: 0, 1, 2, tall
    assert tall[0, 0].float().mean() > 200 and tall[2, 0].float().mean() < 40  # the red band, squashed, not cut
    assert tall[2, -1].float().mean() > 200 and tall[0, -1].float().mean() < 40  # the blue one


def test_transparent_pixels_are_laid_on_white(tmp_path, monkeypatch):
    """Regression: the colour stored under transparent pixels was shown (the alpha channel dropped, as torchvision's
    loader does): one tool's icons on black, another's on the erased photo, the same drawings on white at predict."""
    from PIL import Image

    from autocls.data.sources import decode_images

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c in ("black", "noise"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            rgba = np.zeros((16, 16, 4), dtype=np.uint8)
            if c == "noise":  # an editor keeps the erased photo under alpha 0
                rgba[..., :3] = rng.integers(0, 256, (16, 16, 3))
            rgba[4:12, 4:12] = (200, 0, 0, 255)  # an opaque red square in the middle
            Image.fromarray(rgba, "RGBA").save(tmp_path / "d" / c / f"{i}.png")
    ds = load_dataset(str(tmp_path / "d"))
    assert ds.images.shape == (6, 3, 16, 16)
    red = torch.tensor([200, 0, 0], dtype=torch.uint8)[:, None, None]
    assert (ds.images[:, :, :4] == 255).all() and (ds.images[:, :, 4:12, 4:12] == red).all()

    half = np.zeros((8, 8, 2), dtype=np.uint8)
    half[..., 1] = 128  # gray with alpha: black at half opacity
    Image.fromarray(half, "LA").save(tmp_path / "half.png")
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([10, 20, 30, 200, 0, 0])
    palette.save(tmp_path / "palette.gif", transparency=0)  # a GIF's transparent palette index
    x, read = decode_images([tmp_path / "half.png"], (8, 8), channels=1)
    assert read == [0] and x.unique().tolist() == [127]
    x, read = decode_images([tmp_path / "palette.gif"], (8, 8))
    assert read == [0] and (x == 255).all()


def test_heic_and_avif_photos_are_images(tmp_path, monkeypatch):
    """Regression: a folder of iPhone photos (HEIC, their default) was passed over in silence, and its class was
    "a class folder with no images"; AVIF too."""
    from PIL import Image
    from pillow_heif import register_heif_opener

    from autocls.ensemble.predict import collect_images

    register_heif_opener()  # to write them here; autocls registers it to read them
    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    top_bright = np.zeros((32, 24, 3), dtype=np.uint8)
    top_bright[:16] = 255
    for c, ext, pixels in (("iphone", "heic", top_bright), ("web", "avif", 255 - top_bright)):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(pixels).save(tmp_path / "d" / c / f"{i}.{ext}", quality=90)
    ds = load_dataset(str(tmp_path / "d"))
    assert ds.classes == ["iphone", "web"] and ds.images.shape == (6, 3, 32, 24)
    top, bottom = ds.images[:, :, :16].float().mean((1, 2, 3)), ds.images[:, :, 16:].float().mean((1, 2, 3))
    assert (top[:3] > 200).all() and (bottom[:3] < 55).all() and (top[3:] < 55).all() and (bottom[3:] > 200).all()
    assert len(collect_images([tmp_path / "d"])) == 6  # predict finds them too


def test_jpegs_by_any_of_their_names_are_images(tmp_path, monkeypatch):
    """Regression: a JPEG that Windows named ``.jfif`` (a browser's "save image as") or a camera ``.jpe`` was
    passed over in silence, in training and at predict; and JPEG 2000, APNG and PNM files too."""
    from PIL import Image

    from autocls.ensemble.predict import collect_images

    monkeypatch.setenv("AUTOCLS_CACHE", str(tmp_path / "cache"))
    for name, pixels, fmt in (("saved/0.jfif", 100, "JPEG"), ("saved/1.JFIF", 100, "JPEG"),
                              ("saved/2.jpe", 100, "JPEG"), ("other/0.jp2", 200, "JPEG2000"),
                              ("other/1.apng", 200, "PNG"), ("other/2.pnm", 200, "PPM")):
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), pixels, dtype=np.uint8)).save(tmp_path / "d" / name, format=fmt)
    ds = load_dataset(str(tmp_path / "d"))
    assert sorted(ds.classes) == ["other", "saved"] and len(ds.labels) == 6
    assert len(collect_images([tmp_path / "d" / "saved"])) == 3


def test_linked_folders_are_followed_once(tmp_path):
    """Regression: a class folder made of links to other folders (``bird/2019 -> /data/birds-2019``) was "a class
    folder with no images", where torchvision's ImageFolder follows such links; a link back up the tree ends."""
    photos = write_image_folder(tmp_path / "photos", classes=("birds-2019", "birds-2020", "cats"), per_class=4)
    (tmp_path / "ds" / "bird").mkdir(parents=True)
    for year in ("2019", "2020"):
        (tmp_path / "ds" / "bird" / year).symlink_to(photos / f"birds-{year}", target_is_directory=True)
    (tmp_path / "ds" / "cat").symlink_to(photos / "cats", target_is_directory=True)
    (tmp_path / "ds" / "bird" / "2019" / "up").symlink_to(tmp_path / "ds" / "bird", target_is_directory=True)
    ds = load_dataset(str(tmp_path / "ds"))
    assert ds.classes == ["bird", "cat"] and ds.labels.tolist() == [0] * 8 + [1] * 4


def test_hidden_files_are_not_images_of_a_folder(tmp_path):
    """Regression: a Mac's AppleDouble files (``._<name>.jpg`` beside each photo copied to a USB drive) were read as
    photos, and every one skipped in a warning; images in hidden folders (``.ipynb_checkpoints/``) were trained on."""
    import warnings

    from autocls.ensemble.predict import collect_images

    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=5)
    for c in ("a", "b"):
        for f in sorted((root / c).iterdir()):
            (root / c / f"._{f.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4000))
        (root / c / ".ipynb_checkpoints").mkdir()
        (root / c / ".ipynb_checkpoints" / "0-checkpoint.png").write_bytes((root / c / "0.png").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipped ... files that are not readable images"
        ds = load_dataset(str(root))
    assert len(ds.labels) == 10
    assert len(collect_images([root])) == 10
    assert collect_images([root / "a" / "._0.png"]) == [root / "a" / "._0.png"]  # a file named is a file asked for
