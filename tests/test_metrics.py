import math

import numpy as np
import pytest

from livestyle.quality.metrics import crop_to_multiple, gaussian_window, psnr, psnr_y, rgb_to_y, ssim, ssim_y


@pytest.fixture
def photo():
    """A smooth synthetic RGB image (uint8) with some texture, 48×40."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:48, 0:40]
    base = np.stack([128 + 60 * np.sin(x / 5.0), 128 + 50 * np.cos(y / 7.0), (x + y) * 2.0], axis=2)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def test_identical_images_give_inf_and_one(photo):
    assert psnr_y(photo, photo, crop=4) == math.inf
    assert ssim_y(photo, photo, crop=4) == pytest.approx(1.0, abs=1e-12)


def test_y_channel_matches_bt601():
    # Hand values: white → 235, black → 16, pure red → 16 + 65.481.
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)
    assert rgb_to_y(pixels)[0] == pytest.approx([235.0, 16.0, 81.481], abs=1e-9)


def test_psnr_of_known_noise_level():
    # Y values with ±σ noise of a fixed pattern: MSE = σ² exactly, so PSNR = 20·log10(255/σ).
    a = np.full((64, 64), 100.0)
    signs = np.where((np.indices((64, 64)).sum(0) % 2) == 0, 1.0, -1.0)
    for sigma in (1.0, 5.0, 12.5):
        expected = 20 * math.log10(255.0 / sigma)
        assert psnr(a, a + sigma * signs) == pytest.approx(expected, abs=0.01)


def test_psnr_y_ignores_the_border(photo):
    damaged = photo.copy()
    damaged[:4] = 0  # only the 4-pixel border differs
    assert psnr_y(damaged, photo, crop=4) == math.inf
    assert psnr_y(damaged, photo, crop=0) < 30


def test_gaussian_window_is_normalised_and_symmetric():
    w = gaussian_window()
    assert w.shape == (11, 11) and w.sum() == pytest.approx(1.0) and np.allclose(w, w.T)
    assert w[5, 5] == w.max()


def test_ssim_matches_scikit_image(photo):
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (test extra) not installed")
    rng = np.random.default_rng(2)
    noisy = np.clip(photo.astype(float) + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    ya, yb = rgb_to_y(noisy)[4:-4, 4:-4], rgb_to_y(photo)[4:-4, 4:-4]
    reference = metrics.structural_similarity(ya, yb, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, K1=0.01, K2=0.03)
    ours = ssim_y(noisy, photo, crop=4)
    assert ours == pytest.approx(reference, abs=1e-6)
    assert 0.0 < ours < 0.99  # noise this strong must cost structure
    assert psnr_y(noisy, photo, crop=4) == pytest.approx(
        metrics.peak_signal_noise_ratio(yb, ya, data_range=255.0), abs=1e-9)


def test_ssim_matches_direct_definition():
    # Independent reference: SSIM computed window by window from the definition (no filtering trick).
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 255, (14, 13))
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255)
    w = gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    assert ssim(a, b) == pytest.approx(np.mean(values), abs=1e-9)


def test_shape_mismatch_and_tiny_images_are_rejected(photo):
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_y(photo, photo[:-1])
    with pytest.raises(ValueError, match="too small"):
        psnr_y(photo[:8, :8], photo[:8, :8], crop=4)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))


def test_crop_to_multiple():
    assert crop_to_multiple(np.zeros((51, 38, 3)), 8).shape == (48, 32, 3)
