"""The CelebA data module and its prepared cache, on the real CelebA sample."""

import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.data import Crop, DataError
from stylegan.data import cache as cache_module
from stylegan.data.cache import resize_pyramid
from stylegan.errors import ConfigError


def first_batch(dm, resolution, batch_size):
    dm.set_stage(resolution, batch_size)
    return next(iter(dm.train_dataloader()))


def test_batches_are_uint8_at_the_stage_resolution_and_floats_in_range_on_device(make_dm):
    dm = make_dm()
    for resolution, batch_size in ((8, 16), (16, 4)):
        batch = first_batch(dm, resolution, batch_size)
        assert batch.shape == (batch_size, 3, resolution, resolution)
        assert batch.dtype == torch.uint8
        images = dm.on_after_batch_transfer(batch, 0)
        assert images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1
        assert images.min() < -0.5 and images.max() > 0.5  # real images span the range


def test_loader_outlasts_any_resolution_phase(make_dm):
    dm = make_dm()
    dm.set_stage(8, 16)
    loader = dm.train_dataloader()
    assert len(loader) * 16 >= 1_000_000  # training, not the loader, ends the epoch


def test_flip_mirrors_exactly(make_dm):
    plain = make_dm(hflip_p=0.0)
    plain.set_stage(16, 4)
    flipped = make_dm(hflip_p=1.0)
    flipped.set_stage(16, 4)
    a = plain.train_dataloader().dataset[3]
    b = flipped.train_dataloader().dataset[3]
    assert torch.equal(b, a.flip(-1))
    assert not torch.equal(a, b)


def test_crop_is_a_fraction_of_the_frame(make_dm, celeba_root):
    dm = make_dm(crop_size=0.5, crop_center_y=0.5, resolutions=[16])
    name = dm.prepared.files[5]
    with Image.open(celeba_root / "img_align_celeba" / name) as image:
        width, height = image.size  # 89 x 109 here, 178 x 218 for the official files
        side = round(0.5 * width)
        left, top = round(width / 2 - side / 2), round(0.5 * height - side / 2)
        expected = image.convert("RGB").crop((left, top, left + side, top + side))
        # The crop is resized as the cache's pyramid does (test_data checks the pyramid itself).
        expected = resize_pyramid(expected, [16])[16].transpose(1, 2, 0)
    assert Crop(0.5, 0.5).box(width, height) == (left, top, left + side, top + side)
    cached = dm.prepared.array(16)[5].transpose(1, 2, 0)
    assert np.array_equal(cached, expected)
    # The same fractions on the full-size frame give twice the pixels.
    assert Crop(0.5, 0.5).box(2 * width, 2 * height)[2] - Crop(0.5, 0.5).box(2 * width, 2 * height)[
        0
    ] == round(0.5 * 2 * width)


def _attributes(celeba_root):
    rows = [
        line.split() for line in (celeba_root / "list_attr_celeba.txt").read_text().splitlines()
    ]
    names = rows[1]
    return names, {row[0]: row[1:] for row in rows[2:]}


def test_exclude_attribute_removes_every_such_image(make_dm, celeba_root):
    names, table = _attributes(celeba_root)
    column = names.index("Eyeglasses")
    dm = make_dm(exclude_attributes=["Eyeglasses"], limit=None, resolutions=[8])
    chosen = dm.prepared.files
    assert all(table[f][column] == "-1" for f in chosen)
    assert len(chosen) == sum(1 for row in table.values() if row[column] == "-1")


def test_require_attribute_keeps_only_such_images(make_dm, celeba_root):
    names, table = _attributes(celeba_root)
    column = names.index("Smiling")
    dm = make_dm(require_attributes=["Smiling"], limit=40, resolutions=[8])
    assert len(dm.prepared.files) == 40
    assert all(table[f][column] == "1" for f in dm.prepared.files)


def test_holdout_splits_the_selection_into_disjoint_train_and_held_out_images(make_dm):
    everything = make_dm(limit=None, resolutions=[8], prepare=False).select_files()
    train = make_dm(limit=None, holdout=1000, resolutions=[8], prepare=False).select_files()
    held = make_dm(limit=None, holdout=1000, subset="holdout", resolutions=[8], prepare=False)
    held = held.select_files()
    assert len(held) == 1000 and held == everything[-1000:]
    assert train == everything[:-1000]
    assert not set(train) & set(held)
    # limit then takes the first N of the training part; the held-out images stay out.
    limited = make_dm(limit=100, holdout=1000, resolutions=[8], prepare=False).select_files()
    assert limited == everything[:100]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(subset="holdout"), "needs data.holdout"),
        (dict(holdout=-1), "data.holdout must be >= 0"),
        (dict(subset="test"), "data.subset train or holdout"),
    ],
)
def test_bad_holdout_settings_are_one_line_errors(make_dm, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_dm(prepare=False, **kwargs)


def test_a_holdout_larger_than_the_data_is_refused(make_dm):
    dm = make_dm(prepare=False, limit=None, holdout=10**6)
    with pytest.raises(DataError, match="leaves no training images"):
        dm.select_files()


def test_unknown_attribute_names_the_valid_ones(make_dm):
    with pytest.raises(ConfigError, match=r"unknown CelebA attribute .Sunglasses.*Eyeglasses"):
        make_dm(exclude_attributes=["Sunglasses"])


def _layout_copy(celeba_root, tmp_path, count=12):
    root = tmp_path / "celeba"
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(1, count + 1):
        shutil.copy(celeba_root / "img_align_celeba" / f"{i:06d}.jpg", images)
    return root


def test_partition_file_selects_the_split(celeba_root, tmp_path, make_dm):
    root = _layout_copy(celeba_root, tmp_path)
    lines = [f"{i:06d}.jpg {0 if i <= 8 else 1}" for i in range(1, 13)]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    assert len(make_dm(root=str(root), split="train").prepared) == 8
    assert make_dm(root=str(root), split="valid").prepared.files == [
        f"{i:06d}.jpg" for i in range(9, 13)
    ]
    assert len(make_dm(root=str(root), split="all").prepared) == 12


def test_unreadable_images_are_skipped_and_counted_in_one_warning(celeba_root, tmp_path, make_dm):
    root = _layout_copy(celeba_root, tmp_path, count=10)
    images = root / "img_align_celeba"
    data = (celeba_root / "img_align_celeba" / "000011.jpg").read_bytes()
    (images / "000011.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (images / "000012.jpg").write_bytes(b"not a jpeg at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = make_dm(root=str(root))
    skipped = [w for w in caught if "unreadable" in str(w.message)]
    assert len(skipped) == 1 and "skipped 2 " in str(skipped[0].message)
    assert len(dm.prepared) == 10
    assert dm.prepared.array(8).shape == (10, 3, 8, 8)
    assert "000011.jpg" not in dm.prepared.files


@pytest.mark.parametrize("layout", ["celeba", "folder"])
def test_missing_or_empty_folder_is_a_one_line_error(tmp_path, make_dm, layout):
    with pytest.raises(DataError, match=r"data folder not found: .*set data\.root=PATH") as missing:
        make_dm(root=str(tmp_path / "nowhere"), layout=layout)
    assert "\n" not in str(missing.value)
    (tmp_path / "empty" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found in"):
        make_dm(root=str(tmp_path / "empty"), layout=layout)


def test_second_setup_is_a_cache_hit_without_decoding(make_dm, monkeypatch):
    first = make_dm()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image on a cache hit")

    monkeypatch.setattr(cache_module, "load_resized", no_decoding)
    second = make_dm()
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(second.prepared.array(16), first.prepared.array(16))


def test_changing_the_crop_or_the_images_invalidates_the_cache(make_dm):
    base = make_dm().fingerprint
    assert make_dm(crop_size=0.6).fingerprint != base
    assert make_dm(limit=63).fingerprint != base


def test_a_new_resolution_is_added_to_an_existing_cache(make_dm):
    first = make_dm(resolutions=[8])
    second = make_dm(resolutions=[8, 32])
    assert second.fingerprint == first.fingerprint
    assert second.prepared.array(32).shape == (64, 3, 32, 32)


def test_folder_layout_finds_images_recursively(celeba_root, tmp_path, make_dm):
    root = tmp_path / "faces"
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    shutil.copy(celeba_root / "img_align_celeba" / "000001.jpg", root / "a" / "x.jpg")
    Image.open(celeba_root / "img_align_celeba" / "000002.jpg").save(root / "b" / "c" / "y.png")
    dm = make_dm(root=str(root), layout="folder", split="all")
    assert dm.prepared.files == ["a/x.jpg", "b/c/y.png"]


def test_real_batches_are_a_fixed_unflipped_subset(make_dm):
    dm = make_dm(hflip_p=1.0)
    first = torch.cat(list(dm.real_batches(16, 20, 8)))
    again = torch.cat(list(dm.real_batches(16, 20, 8)))
    assert first.shape == (20, 3, 16, 16) and first.dtype == torch.uint8
    assert torch.equal(first, again)
    array = torch.from_numpy(np.array(dm.prepared.array(16)))
    assert all(any(torch.equal(img, ref) for ref in array) for img in first[:5])


def test_bad_values_are_refused(make_dm):
    with pytest.raises(ConfigError, match="split"):
        make_dm(split="training")
    with pytest.raises(ConfigError, match="crop_size"):
        make_dm(crop_size=1.5)
    dm = make_dm()
    with pytest.raises(ConfigError, match="32px is not among"):
        dm.set_stage(32, 4)
