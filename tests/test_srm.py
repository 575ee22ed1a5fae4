"""SRM (spec §2): frames of known notes, windows, T_H, binary mode, and a slow per-note reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saga_hsmad.symbolic.midi import Notes, Score
from saga_hsmad.symbolic.srm import SRM, latent_frame_rate, num_frames, render_srm

FR = 44100 / 512          # 86.1328125 frames/s (exact in binary floating point)
ONSET, SUSTAIN, VELOCITY = 0, 128, 256


def slow_reference(notes, duration, fr, sigma_on=None, sigma_off=None, thr=0.01, mode="soft"):
    """Straight per-note, dense-over-frames transcription of the spec's equations (independent code)."""
    T = int(np.floor(duration * fr + 1e-9))
    t = np.arange(T) / fr
    sigma_on = sigma_on or 1 / (2 * fr)
    sigma_off = sigma_off or 1 / (2 * fr)
    on, sus, vel = np.zeros((128, T)), np.zeros((128, T)), np.zeros((128, T))
    for p, s, e, velocity in notes:
        p, v = int(p), velocity / 127
        if mode == "soft":
            if s >= 0:
                on[p] += v * np.exp(-(t - s) ** 2 / (2 * sigma_on ** 2))
            value = np.where((t >= s) & (t <= e), 1.0, np.where(t > e, np.exp(-(t - e) ** 2 / (2 * sigma_off ** 2)), 0.0))
            sus[p] += value
            vel[p] += np.where(value > thr, v, 0.0)
        else:
            band = (t >= s) & (t <= e)
            c = int(np.rint(s * fr))
            if s >= 0 and c < T:
                on[p, c] = 1.0
                band[c] = True
            sus[p] += band
            vel[p] += v * band
    if mode == "binary":
        sus = np.minimum(sus, 1.0)
    return np.concatenate([on, sus, vel]).astype(np.float32)


def score(rows):
    return Score.from_notes(rows)


# ---------------------------------------------------------------- a single known note
def test_single_note_frames():
    v = 100 / 127
    s0, e0 = 10 / FR, 40.5 / FR                   # onset exactly on frame 10; release half-way 40 -> 41
    S = render_srm(score([(60, s0, e0, 100)]), 1.0, FR).numpy()
    assert S.shape == (384, 86) and S.dtype == np.float32
    onset, sustain, velocity = S[ONSET + 60], S[SUSTAIN + 60], S[VELOCITY + 60]
    # onset: peak v at frame 10; neighbours v * exp(-(1/FR)^2 / (2 (1/(2FR))^2)) = v * exp(-2)
    assert int(np.argmax(onset)) == 10
    assert onset[10] == pytest.approx(v, rel=1e-6)
    assert onset[9] == pytest.approx(v * math.exp(-2), rel=1e-5) and onset[11] == pytest.approx(v * math.exp(-2), rel=1e-5)
    assert onset[13] == pytest.approx(v * math.exp(-18), rel=1e-4)
    # sustain: 0 before, 1 on frames 10..40, then exp(-(d/FR)^2 * 2 FR^2) = exp(-2 d^2) with d = 0.5, 1.5, 2.5
    assert (sustain[:10] == 0).all() and (sustain[10:41] == 1).all()
    np.testing.assert_allclose(sustain[41:44], np.exp(-2 * np.array([0.5, 1.5, 2.5]) ** 2), rtol=1e-5)
    assert sustain[46:].max() < 1e-10
    # velocity: v where sustain > 0.01: frames 10..42 (exp(-4.5) = 0.0111 > 0.01, exp(-12.5) < 0.01)
    assert (velocity[:10] == 0).all()
    np.testing.assert_allclose(velocity[10:43], v, rtol=1e-6)
    assert (velocity[43:] == 0).all()
    # nothing on other pitches
    others = np.delete(S, [ONSET + 60, SUSTAIN + 60, VELOCITY + 60], axis=0)
    assert (others == 0).all()


def test_velocity_threshold_is_config():
    S = render_srm(score([(60, 10 / FR, 40.5 / FR, 100)]), 1.0, FR, velocity_threshold=0.02).numpy()
    assert S[VELOCITY + 60, 42] == 0 and S[VELOCITY + 60, 41] > 0      # exp(-4.5) = 0.0111 < 0.02


def test_sigma_is_config():
    sigma = 2 / FR                                  # onset at frame 10, neighbour 3 frames away
    S = render_srm(score([(60, 10 / FR, 20 / FR, 127)]), 1.0, FR, sigma_on=sigma, sigma_off=sigma).numpy()
    assert S[ONSET + 60, 13] == pytest.approx(math.exp(-9 / 8), rel=1e-5)
    assert S[SUSTAIN + 60, 23] == pytest.approx(math.exp(-9 / 8), rel=1e-5)


def test_polyphony_adds():
    a, b, c = (60, 0.10, 0.50, 100), (60, 0.30, 0.80, 50), (64, 0.20, 0.40, 80)
    S = render_srm(score([a, b, c]), 1.0, FR)
    parts = sum(render_srm(score([n]), 1.0, FR) for n in (a, b, c))
    torch.testing.assert_close(S, parts, atol=1e-6, rtol=0)
    f = int(np.ceil(0.35 * FR))                     # both notes of pitch 60 sound
    assert S[SUSTAIN + 60, f] == 2.0
    assert S[VELOCITY + 60, f] == pytest.approx(150 / 127, rel=1e-6)


def test_window_starting_mid_note_has_sustain_without_onset():
    full = score([(60, 0.0, 2.0, 100), (62, 1.5, 1.8, 90)])
    w = full.window(1.0, 1.0)
    S = render_srm(w, 1.0, FR).numpy()
    assert (S[ONSET + 60] == 0).all()              # started before the window: no onset
    assert (S[SUSTAIN + 60, : int(FR) - 1] == 1).all()  # ... but it sustains from frame 0
    assert (S[VELOCITY + 60, :5] == pytest.approx(100 / 127))
    f62 = int(np.rint(0.5 * FR))
    assert int(np.argmax(S[ONSET + 62])) == f62   # a note starting inside the window keeps its onset


def test_window_render_matches_full_render():
    rng = np.random.default_rng(1)
    starts = rng.uniform(0, 8, 200)
    rows = np.stack([rng.integers(40, 90, 200), starts, starts + rng.exponential(0.3, 200), rng.integers(1, 128, 200)], 1)
    full = score(rows)
    k, n = 300, 256                                 # window = frames 300 .. 555 of the full render
    t0, dur = k / FR, n / FR
    S_full = render_srm(full, 8.0, FR)
    S_win = render_srm(full.window(t0, dur, margin=0.2), dur, FR)
    assert S_win.shape == (384, n)
    # identical apart from the onsets of notes that began before t0 (dropped by design)
    torch.testing.assert_close(S_win[128:], S_full[128:, k:k + n], atol=2e-5, rtol=0)
    late = rows[rows[:, 1] >= t0]
    S_late = render_srm(score(late), 8.0, FR)
    torch.testing.assert_close(S_win[:128], S_late[:128, k:k + n], atol=2e-5, rtol=0)


# ---------------------------------------------------------------- time grid
@pytest.mark.parametrize("ratio, duration, expected", [
    (512, 30.0, 2583), (2048, 30.0, 645), (256, 30.0, 5167), (2048, 10.0, 215), (320, 30.0, 4134)])
def test_num_frames_is_floor(ratio, duration, expected):
    fr = latent_frame_rate(44100, ratio)
    assert num_frames(duration, fr) == expected
    assert render_srm(score([(60, 0.1, 0.2, 64)]), duration, fr).shape == (384, expected)


def test_num_frames_exact_multiple():
    for ratio in (256, 512, 2048):
        fr = latent_frame_rate(44100, ratio)
        for k in (16, 2560, 4096):
            assert num_frames(k / fr, fr) == k


def test_frame_rate_is_not_hard_coded():
    fr = latent_frame_rate(44100, 2048)             # 21.53 frames/s: default sigma = 1 / (2 fr)
    S = render_srm(score([(60, 4 / fr, 8 / fr, 127)]), 1.0, fr).numpy()
    assert S.shape == (384, 21)
    assert S[ONSET + 60, 4] == pytest.approx(1.0) and S[ONSET + 60, 5] == pytest.approx(math.exp(-2), rel=1e-5)


# ---------------------------------------------------------------- binary mode
def test_binary_mode_single_note():
    v = 100 / 127
    S = render_srm(score([(60, 10.4 / FR, 40.5 / FR, 100)]), 1.0, FR, mode="binary").numpy()
    on, sus, vel = S[ONSET + 60], S[SUSTAIN + 60], S[VELOCITY + 60]
    assert np.nonzero(on)[0].tolist() == [10] and on[10] == 1.0     # nearest frame, value 1
    assert np.nonzero(sus)[0].tolist() == list(range(10, 41)) and sus.max() == 1.0  # onset frame .. t <= end
    np.testing.assert_allclose(vel[10:41], v, rtol=1e-6)
    assert (vel[:10] == 0).all() and (vel[41:] == 0).all()
    soft = render_srm(score([(60, 10.4 / FR, 40.5 / FR, 100)]), 1.0, FR, mode="soft").numpy()
    assert soft[ONSET + 60, 10] == pytest.approx(v * math.exp(-2 * 0.4 ** 2), rel=1e-5)  # keeps sub-frame timing
    assert soft[SUSTAIN + 60, 41] > 0 and sus[41] == 0                                    # release tail only in soft


def test_binary_mode_clips_polyphony():
    S = render_srm(score([(60, 0.1, 0.5, 100), (60, 0.1, 0.3, 20)]), 1.0, FR, mode="binary").numpy()
    assert S[ONSET + 60].max() == 1.0 and S[SUSTAIN + 60].max() == 1.0
    assert S[VELOCITY + 60].max() == pytest.approx(120 / 127, rel=1e-6)


# ---------------------------------------------------------------- against the slow reference
@pytest.mark.parametrize("mode", ["soft", "binary"])
@pytest.mark.parametrize("ratio, sigma, thr", [(512, None, 0.01), (2048, None, 0.05), (256, 0.02, 0.001)])
def test_matches_slow_reference(mode, ratio, sigma, thr):
    fr = latent_frame_rate(44100, ratio)
    rng = np.random.default_rng(ratio)
    n, duration = 400, 6.0
    starts = rng.uniform(-1.0, 6.5, n)               # some before the window, some after its end
    ends = starts + np.where(rng.random(n) < 0.1, 0.0, rng.exponential(0.4, n))   # incl. zero-length notes
    vel = rng.integers(1, 128, n).astype(float)
    vel[:20] = rng.uniform(1, 127, 20)               # fractional velocities too
    rows = np.stack([rng.integers(0, 128, n), starts, ends, vel], 1)
    rows[:30, 0] = 60                                # many overlaps on one pitch
    fast = render_srm(Score.from_notes(rows), duration, fr, sigma_on=sigma, sigma_off=sigma,
                      velocity_threshold=thr, mode=mode).numpy()
    slow = slow_reference(rows, duration, fr, sigma, sigma, thr, mode)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, atol=2e-5, rtol=0)


def test_empty_and_drums():
    S = render_srm(Score.from_notes([]), 2.0, FR)
    assert S.shape == (384, 172) and S.abs().sum() == 0
    notes = Notes.build([36, 60], [0.1, 0.1], [0.2, 0.2], [100, 100], is_drum=[True, False])
    assert render_srm(notes, 1.0, FR)[SUSTAIN + 36].sum() > 0
    assert render_srm(notes, 1.0, FR, drop_drums=True)[SUSTAIN + 36].sum() == 0


def test_config_and_device():
    srm = SRM(frame_rate=FR)
    assert srm.sigmas == (1 / (2 * FR), 1 / (2 * FR))
    out = srm(score([(60, 0.1, 0.2, 64)]), 1.0, device="cpu")
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    for bad in [dict(mode="fuzzy"), dict(velocity_threshold=0.0), dict(sigma_on=-1.0)]:
        with pytest.raises(ValueError):
            SRM(frame_rate=FR, **bad)
    with pytest.raises(ValueError):
        SRM(frame_rate=0.0)


def test_many_overlapping_notes_do_not_overflow():
    # 300 simultaneous velocity-127 notes on one pitch: the velocity sum exceeds int32 fixed point
    rows = [(60, 0.1, 0.5, 127)] * 300
    S = render_srm(Score.from_notes(rows), 1.0, FR).numpy()
    f = int(np.ceil(0.2 * FR))
    assert S[SUSTAIN + 60, f] == 300 and S[VELOCITY + 60, f] == pytest.approx(300.0, rel=1e-6)


def test_frame_counting_equals_searchsorted():
    """The arithmetic frame search behind the sustain/velocity intervals agrees with np.searchsorted,
    including times exactly on, and one ulp either side of, frame times."""
    from saga_hsmad.symbolic.srm import _count_frames_before

    rng = np.random.default_rng(0)
    for fr in (44100 / 512, 44100 / 2048, 44100 / 320, 100.0, 0.7):
        times = np.arange(500) / fr
        x = np.concatenate([rng.uniform(-2, 502 / fr, 3000), times, np.nextafter(times, np.inf),
                            np.nextafter(times, -np.inf), np.arange(500) * (1 / fr), [-1e9, 1e9]])
        np.testing.assert_array_equal(_count_frames_before(times, x, fr, inclusive=False),
                                      np.searchsorted(times, x, side="left"))
        np.testing.assert_array_equal(_count_frames_before(times, x, fr, inclusive=True),
                                      np.searchsorted(times, x, side="right"))
