import cv2
import numpy as np
import pytest
import torch

from samples import smooth_image
from livestyle.training.data import (ImageBank, StyleData, SuperResData, decode_images, read_pack, resize_short_side,
                                     write_pack)
from livestyle.quality.superres_eval import gaussian_blur, gaussian_kernel1d, make_low_resolution
from livestyle.errors import InputError



@pytest.fixture
def photo_folder(tmp_path):
    """Five good PNGs in nested class folders, one corrupt JPEG, one empty file and one non-image."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for i in range(5):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"p{i}.png"), smooth_image(rng, 40 + 4 * i, 48)[..., ::-1])
    (root / "class0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "class1" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_decoded_once_corrupt_files_skipped_and_counted(photo_folder):
    decoded = decode_images(photo_folder)
    assert len(decoded) == 5
    assert sorted(decoded.skipped) == ["class0/broken.jpg", "class1/empty.png"]
    assert all(img.dtype == np.uint8 and img.shape[2] == 3 for img in decoded.images)
    # RGB order: the file holds the BGR of the array we generated
    first = cv2.imread(str(photo_folder / decoded.names[0]))[..., ::-1]
    assert np.array_equal(decoded.images[0], first)


def test_pack_round_trip_matches_folder(photo_folder, tmp_path):
    files = [p for p in sorted(photo_folder.rglob("*.png")) if p.stat().st_size]
    files.append(photo_folder / "class0" / "broken.jpg")
    pack = tmp_path / "pack.npz"
    write_pack(((p.name, p.read_bytes()) for p in files), pack)
    assert [n for n, _ in read_pack(pack)] == [p.name for p in files]
    from_pack = decode_images(pack)
    assert from_pack.skipped == ["broken.jpg"]
    for a, b in zip(from_pack.images, decode_images(photo_folder).images):
        assert np.array_equal(a, b)  # PNG is lossless: the same pixels either way


def test_nothing_decodable_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match="none of the 1 files"):
        decode_images(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        decode_images(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        decode_images(tmp_path / "missing")


def test_not_a_pack(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    (tmp_path / "text.npz").write_text("not an archive")
    np.savez(tmp_path / "objects.npz", encoded=np.array([{"a": 1}], dtype=object), offsets=np.zeros(2),
             names=np.array(["a"]))
    for name in ("other.npz", "text.npz", "objects.npz"):
        with pytest.raises(InputError, match="not a livestyle image pack"):
            decode_images(tmp_path / name)


def test_a_truncated_pack_is_an_input_error(photo_folder, tmp_path):
    """A pack cut short (an interrupted copy) raised zipfile.BadZipFile as a traceback."""
    pack = tmp_path / "pack.npz"
    write_pack(((p.name, p.read_bytes()) for p in sorted(photo_folder.rglob("*.png"))), pack)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    with pytest.raises(InputError, match="not a livestyle image pack, or it is truncated"):
        decode_images(cut)
    with pytest.raises(InputError, match="is a file; give a folder of photos"):
        decode_images(__file__)  # this test file


def test_resize_short_side_keeps_aspect():
    image = np.zeros((30, 60, 3), np.uint8)
    assert resize_short_side(image, 15).shape == (15, 30, 3)
    assert resize_short_side(image, 60).shape == (60, 120, 3)


def test_crops_are_windows_of_the_photos_and_reproducible(photo_folder):
    decoded = decode_images(photo_folder, short_side=32)
    bank = ImageBank(decoded)
    assert bank.min_side() == 32
    crops = bank.sample_crops(8, 24, torch.Generator().manual_seed(3))
    again = bank.sample_crops(8, 24, torch.Generator().manual_seed(3))
    assert crops.shape == (8, 3, 24, 24) and crops.dtype == torch.uint8
    assert torch.equal(crops, again)
    for crop in crops:
        found = False
        for image in bank.images:
            for candidate in (crop, crop.flip(-1)):
                windows = image.unfold(1, 24, 1).unfold(2, 24, 1)  # (3, h', w', 24, 24)
                match = (windows == candidate[:, None, None]).all(-1).all(-1).all(0)
                found = found or bool(match.any())
        assert found
    with pytest.raises(InputError, match="larger than the smallest photo"):
        bank.sample_crops(1, 33, torch.Generator())


def test_gaussian_blur_matches_opencv():
    assert float(gaussian_kernel1d(1.0).sum()) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    image = rng.random((20, 24, 3)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None], 1.0)[0].permute(1, 2, 0).numpy()
    theirs = cv2.GaussianBlur(image, (7, 7), 1.0, borderType=cv2.BORDER_REFLECT_101)
    assert np.abs(ours - theirs).max() < 1e-5


def test_a_blur_wider_than_the_image_replicates_its_border():
    """--patch-size 16 --blur 6 (radius 18) failed in reflection padding with a traceback."""
    rng = np.random.default_rng(2)
    image = rng.random((10, 12, 3)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None], 6.0)[0].permute(1, 2, 0).numpy()
    radius = int(np.ceil(18))
    theirs = cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), 6.0, borderType=cv2.BORDER_REPLICATE)
    assert np.abs(ours - theirs).max() < 1e-5


def test_low_resolution_input_per_paper():
    flat = torch.full((2, 3, 32, 32), 0.3)
    low = make_low_resolution(flat, 4)
    assert low.shape == (2, 3, 8, 8)
    assert torch.allclose(low, flat[..., :8, :8], atol=1e-6)  # blur and bicubic keep a constant image
    with pytest.raises(ValueError, match="multiple"):
        make_low_resolution(torch.zeros(1, 3, 30, 30), 4)


def test_style_and_superres_batches(photo_folder):
    bank = ImageBank(decode_images(photo_folder, min_side=40))
    generator = torch.Generator().manual_seed(0)
    content = StyleData(bank, 32).batch(4, generator)
    assert content.shape == (4, 3, 32, 32) and content.dtype == torch.float32
    assert 0.0 <= content.min() and content.max() <= 1.0
    low, high = SuperResData(bank, scale=8, patch=40).batch(2, generator)
    assert high.shape == (2, 3, 40, 40) and low.shape == (2, 3, 5, 5)
    with pytest.raises(InputError, match="multiple of the scale"):
        SuperResData(bank, scale=8, patch=36)


def test_low_resolution_input_is_antialiased():
    # A one-pixel checkerboard has no content a ×4 input can hold: antialiased downsampling gives flat
    # grey (as MATLAB's imresize and the SR benchmarks do); plain bicubic sampling would alias it.
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((x + y) % 2).float().expand(1, 3, 32, 32)
    low = make_low_resolution(board, 4)
    assert low.shape == (1, 3, 8, 8)
    assert (low - 0.5).abs().max().item() < 0.02
