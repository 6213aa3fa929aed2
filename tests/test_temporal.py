"""Flicker score (warping error along the input's motion) and the flow-guided Stabilizer, on synthetic motion."""
import numpy as np
import pytest

from livestyle.quality.flicker import FlickerMeter
from livestyle.postprocess.flow import consistent_flow_mask, dis_flow, to_gray
from livestyle.postprocess.stabilizer import Stabilizer, StabilizerConfig


def flicker_score(inputs, outputs) -> float:
    """Mean warping error of an output sequence along the motion of its input sequence."""
    meter = FlickerMeter()
    for input_rgb, output_rgb in zip(inputs, outputs, strict=True):
        meter.update(input_rgb, output_rgb)
    return meter.score


def texture(seed, shape=(160, 220)):
    import cv2

    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 2.0)


def panning(seed=0, frames=8, step=2):
    """A camera panning right over a texture by ``step`` pixels a frame: (frames of 100×140, uint8 RGB)."""
    base = texture(seed)
    return [np.ascontiguousarray(base[20:120, 10 + step * i: 150 + step * i]) for i in range(frames)]


def flickering(frames, sigma=12.0, seed=1):
    """A 'stylisation' that follows the motion but adds fresh noise every frame (what flicker looks like)."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_steady_output_scores_near_zero_and_noise_scores_its_variance():
    frames = panning()
    assert flicker_score(frames, frames) < 1e-4
    # Fresh Gaussian noise of σ in each frame: E[(n_t − n_{t−1})²] = 2σ² (in [0, 1] units).
    assert flicker_score(frames, flickering(frames, 12.0)) == pytest.approx(2 * (12 / 255) ** 2, rel=0.1)


def test_forward_backward_check_flags_uncovered_pixels():
    frames = panning(step=4)
    previous, current = to_gray(frames[0]), to_gray(frames[1])
    mask = consistent_flow_mask(dis_flow(current, previous), dis_flow(previous, current))
    # Panning right by 4 px: the right edge of the new frame was not in the old one.
    assert mask[:, 10:-10].mean() > 0.9
    assert mask[:, -2:].mean() < 0.5


def test_meter_accumulates_pairs_and_coverage():
    frames = panning(frames=4)
    meter = FlickerMeter()
    for f in frames:
        meter.update(f, f)
    assert len(meter.per_pair) == 3 and 0.8 < meter.coverage <= 1.0


def test_sr_sized_outputs_are_scored_at_their_size():
    import cv2

    frames = panning(frames=3)
    big = [cv2.resize(f, (f.shape[1] * 2, f.shape[0] * 2), interpolation=cv2.INTER_CUBIC) for f in frames]
    assert flicker_score(frames, big) < 1e-3 < flicker_score(frames, flickering(big))


def test_stabilizer_lowers_flicker_by_more_than_30_percent():
    frames = panning(frames=10)
    stylised = flickering(frames)
    stabilizer = Stabilizer()
    steadied = [stabilizer(c, s) for c, s in zip(frames, stylised)]
    before, after = flicker_score(frames, stylised), flicker_score(frames, steadied)
    assert after < 0.7 * before
    assert steadied[0] is stylised[0] or np.array_equal(steadied[0], stylised[0])  # nothing to carry over yet
    # And it stays a picture of the same thing: close to the clean frames, not smeared.
    error = np.mean([np.abs(s.astype(float) - f).mean() for s, f in zip(steadied[3:], frames[3:])])
    assert error < np.mean([np.abs(s.astype(float) - f).mean() for s, f in zip(stylised[3:], frames[3:])])


def test_stabilizer_resets_at_a_scene_cut():
    first = panning(seed=0, frames=4)
    second = [np.clip(f.astype(int) + 90, 0, 255).astype(np.uint8) for f in panning(seed=5, frames=3)]  # new, brighter shot
    frames = first + second
    stylised = flickering(frames)
    stabilizer = Stabilizer()
    out = [stabilizer(c, s) for c, s in zip(frames, stylised)]
    assert stabilizer.cuts == 1
    assert np.array_equal(out[4], stylised[4])  # the cut frame is the new stylised frame, no ghost of the old scene
    assert not np.array_equal(out[5], stylised[5])  # and blending resumes after it


def test_stabilizer_handles_larger_outputs_and_reset():
    import cv2

    frames = panning(frames=3)
    big = [cv2.resize(s, (280, 200)) for s in flickering(frames)]
    stabilizer = Stabilizer(StabilizerConfig(flow_long_side=64))
    out = [stabilizer(c, s) for c, s in zip(frames, big)]
    assert all(o.shape == (200, 280, 3) and o.dtype == np.uint8 for o in out)
    stabilizer.reset()
    assert np.array_equal(stabilizer(frames[0], big[0]), big[0])


def test_stabilizer_strength_zero_is_identity_and_bad_settings_fail():
    frames = panning(frames=3)
    stylised = flickering(frames)
    stabilizer = Stabilizer(StabilizerConfig(strength=0.0))
    assert all(np.array_equal(stabilizer(c, s), s) for c, s in zip(frames, stylised))
    with pytest.raises(ValueError, match="strength"):
        StabilizerConfig(strength=1.0)


def test_compare_flicker_scores_both_ways_from_the_same_frames():
    from livestyle.quality.flicker import compare_flicker
    from livestyle.errors import InputError

    frames = panning(frames=6)
    rng = np.random.default_rng(3)

    def stylize(frame):  # a flickering "style": fresh noise per call
        return np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)

    result = compare_flicker(iter(frames), stylize, max_frames=5)
    assert result.frames == 5 and result.flicker > result.flicker_stabilized > 0
    assert result.reduction > 0.3 and result.stylize_ms >= 0 and result.stabilize_ms > 0
    assert set(result.to_dict()) >= {"flicker", "flicker_stabilized", "reduction", "extra_time", "cuts"}
    with pytest.raises(InputError, match="two frames"):
        compare_flicker(frames[:1], stylize)


def test_frames_too_small_for_optical_flow():
    """OpenCV's DIS refuses sides under 12 px: `eval video --size 10x10` ended in a cv2.error traceback."""
    from livestyle.errors import InputError

    tiny = np.zeros((10, 10), np.uint8)
    with pytest.raises(InputError, match="optical flow needs frames of at least 12 px a side; these are 10×10"):
        dis_flow(tiny, tiny)
    stabilizer = Stabilizer(StabilizerConfig())
    frames = [np.full((10, 10, 3), v, np.uint8) for v in (10, 200)]
    for frame in frames:  # stabilising such frames is skipped, not an error
        assert np.array_equal(stabilizer(frame, frame), frame)
