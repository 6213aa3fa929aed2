"""Each loss against a value computed by hand on a tiny tensor."""
import pytest
import torch

from livestyle.quality.losses import feature_loss, gram_matrix, pixel_loss, style_loss, total_variation_loss


def test_gram_matrix_hand_computed():
    # C=2, H=1, W=2: channel a = [1, 2], channel b = [3, 4]; G = F Fᵀ / (C·H·W) = F Fᵀ / 4.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram_matrix(f), expected)


def test_style_loss_is_squared_frobenius_norm():
    g = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    t = torch.tensor([[[0.0, 2.0], [3.0, 1.0]]])
    assert style_loss(g, t).item() == pytest.approx(1.0 + 9.0)
    # batch of two, one identical: mean over the batch
    assert style_loss(torch.cat([g, t]), t).item() == pytest.approx(5.0)


def test_feature_loss_normalised_by_chw():
    a = torch.zeros(1, 2, 2, 2)
    b = torch.zeros(1, 2, 2, 2)
    b[0, 0, 0, 0] = 2.0  # squared distance 4, C·H·W = 8
    assert feature_loss(a, b).item() == pytest.approx(0.5)


def test_total_variation_hand_computed():
    # 1 channel, 2×2: [[0, 1], [3, 5]]: vertical diffs 3, 4 → 9 + 16; horizontal 1, 2 → 1 + 4; /(C·H·W = 4)
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    assert total_variation_loss(x).item() == pytest.approx((9 + 16 + 1 + 4) / 4)
    assert total_variation_loss(torch.ones(2, 3, 5, 5)).item() == 0.0


def test_pixel_loss():
    a = torch.tensor([[[[0.0, 1.0]]]])
    b = torch.tensor([[[[1.0, 1.0]]]])
    assert pixel_loss(a, b).item() == pytest.approx(0.5)


def test_gram_in_float32_for_half_inputs():
    f = torch.full((1, 4, 64, 64), 200.0, dtype=torch.float16)
    g = gram_matrix(f)
    assert g.dtype == torch.float32 and torch.isfinite(g).all()
    assert g[0, 0, 0].item() == pytest.approx(200.0 ** 2 / 4)


def test_gram_stays_float32_under_fp16_autocast():
    """Autocast runs bmm in float16 whatever its inputs, and these sums (≈3.7e6) overflow it: `train
    --amp fp16` ended every style run with 'loss became inf'."""
    features = torch.full((1, 8, 64, 64), 30.0)
    with torch.autocast("cpu", dtype=torch.float16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32 and torch.isfinite(gram).all()
    torch.testing.assert_close(gram, torch.full((1, 8, 8), 900.0 / 8))
