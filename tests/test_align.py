"""``shared.align`` on synthetic hash sequences: exact distances, flips, and offset runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.align import FrameMatches, align_runs, hamming_matches

STEP_S = 0.5


def random_hashes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def noisy(hashes: np.ndarray, flip_probability: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return hashes ^ np.packbits(rng.random((hashes.shape[0], 256)) < flip_probability, axis=1)


def brute_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def times(n: int) -> np.ndarray:
    return np.arange(n) * STEP_S


def runs_for(a: np.ndarray, b: np.ndarray, **kwargs) -> list:
    (matches,) = hamming_matches(a, b, max_distance_bits=64)
    options = dict(step_s=STEP_S, min_segment_s=2.0, max_gap_s=3.0) | kwargs
    return align_runs(matches, times(len(a)), times(len(b)), **options)


# -- hamming_matches --------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1), st.integers(0, 256))
def test_matches_are_exactly_the_pairs_within_the_threshold(
    n: int, m: int, seed: int, threshold: int
) -> None:
    a = random_hashes(n, seed)
    b = np.concatenate([noisy(a, 0.2, seed + 1), random_hashes(m, seed + 2)])
    (found,) = hamming_matches(a, b, max_distance_bits=threshold, top_k=10_000, chunk_rows=7)
    d = brute_distances(a, b)
    want = set(zip(*np.nonzero(d <= threshold), strict=True))
    got = set(zip(found.source_index.tolist(), found.target_index.tolist(), strict=True))
    assert got == {(int(i), int(j)) for i, j in want}
    expected_similarity = np.clip(1 - d[found.source_index, found.target_index] / 128, 0, 1)
    assert np.allclose(found.similarity, expected_similarity, atol=1e-6)
    assert found.source_counts.tolist() == (d <= threshold).sum(axis=1).tolist()
    assert found.target_counts.tolist() == (d <= threshold).sum(axis=0).tolist()


def test_inverted_orientation_equals_matching_the_xored_target() -> None:
    a = random_hashes(50, 1)
    b = noisy(a, 0.1, 2)
    mask = random_hashes(1, 3)[0]
    direct, inverted = hamming_matches(a, b ^ mask, max_distance_bits=64, invert_mask=mask)
    (reference,) = hamming_matches(a, b, max_distance_bits=64)
    assert np.array_equal(inverted.source_index, reference.source_index)
    assert np.array_equal(inverted.target_index, reference.target_index)
    assert np.allclose(inverted.similarity, reference.similarity)
    assert len(direct) == 0  # a random mask makes the un-inverted target look unrelated


def test_invalid_samples_never_match() -> None:
    a = random_hashes(20, 4)
    valid = np.ones(20, bool)
    valid[5:8] = False
    (found,) = hamming_matches(a, a, max_distance_bits=64, source_valid=valid, target_valid=valid)
    assert set(found.source_index.tolist()) == set(np.flatnonzero(valid).tolist())
    assert np.array_equal(found.source_index, found.target_index)


def test_top_k_keeps_the_most_similar_partners_and_the_full_counts() -> None:
    base = random_hashes(1, 5)
    b = noisy(np.repeat(base, 30, axis=0), 0.05, 6)
    (found,) = hamming_matches(base, b, max_distance_bits=64, top_k=4)
    assert len(found) == 4
    assert found.source_counts[0] == 30
    d = brute_distances(base, b)[0]
    assert sorted(d[found.target_index].tolist()) == sorted(d.tolist())[:4]


# -- align_runs -------------------------------------------------------------------------------------------
def test_a_cut_is_found_at_its_offset_with_exact_bounds() -> None:
    a = random_hashes(60, 7)
    b = np.concatenate([random_hashes(16, 8), noisy(a[20:40], 0.1, 9), random_hashes(10, 10)])
    (run,) = runs_for(a, b)
    assert (run.source_start_s, run.source_end_s) == (10.0, 20.0)
    assert (run.target_start_s, run.target_end_s) == (8.0, 18.0)
    assert run.offset_s == pytest.approx(-2.0)
    assert run.aligned == 20
    assert 0.8 < run.score <= 1.0


def test_reused_and_reordered_clips_give_one_run_each() -> None:
    a = random_hashes(60, 11)
    b = np.concatenate([a[40:50], random_hashes(6, 12), a[5:15], a[40:46]])
    runs = runs_for(a, b)
    bounds = [(r.source_start_s, r.source_end_s, r.target_start_s, r.target_end_s) for r in runs]
    assert bounds == [(2.5, 7.5, 8.0, 13.0), (20.0, 25.0, 0.0, 5.0), (20.0, 23.0, 13.0, 16.0)]


def test_short_gaps_are_bridged_and_long_ones_split() -> None:
    a = random_hashes(80, 13)
    b = a.copy()
    b[20:24] = random_hashes(4, 14)  # 2 s of damage: bridged
    b[50:60] = random_hashes(10, 15)  # 5 s: split
    runs = runs_for(a, b)
    assert [(r.source_start_s, r.source_end_s) for r in runs] == [(0.0, 25.0), (30.0, 40.0)]


def test_ignorable_samples_do_not_count_towards_a_gap() -> None:
    a = random_hashes(60, 16)
    blank = np.zeros(60, bool)
    blank[20:34] = True  # 7 s of black frames inside the clip
    (matches,) = hamming_matches(a, a, max_distance_bits=64, source_valid=~blank, target_valid=~blank)
    runs = align_runs(
        matches, times(60), times(60), step_s=STEP_S, min_segment_s=2.0, max_gap_s=3.0, source_ignorable=blank
    )
    assert [(r.source_start_s, r.source_end_s) for r in runs] == [(0.0, 30.0)]
    split = align_runs(matches, times(60), times(60), step_s=STEP_S, min_segment_s=2.0, max_gap_s=3.0)
    assert len(split) == 2


def test_runs_shorter_than_the_minimum_are_dropped() -> None:
    a = random_hashes(40, 17)
    b = np.concatenate([random_hashes(10, 18), a[10:13], random_hashes(10, 19)])
    assert runs_for(a, b) == []
    assert len(runs_for(a, b, min_segment_s=1.0)) == 1


def test_a_static_sequence_builds_no_run() -> None:
    still = np.repeat(random_hashes(1, 20), 40, axis=0)
    assert runs_for(still, noisy(still, 0.02, 21)) == []


def test_unrelated_sequences_give_nothing() -> None:
    assert runs_for(random_hashes(200, 22), random_hashes(200, 23)) == []


def test_sampling_phase_jitter_stays_on_one_diagonal() -> None:
    a = random_hashes(40, 24)
    ta = times(40)
    tb = ta + 3.0 + np.random.default_rng(25).uniform(-0.2, 0.2, 40)  # a 15 fps target on a 2 fps grid
    (matches,) = hamming_matches(a, noisy(a, 0.05, 26), max_distance_bits=64)
    (run,) = align_runs(matches, ta, tb, step_s=STEP_S, min_segment_s=2.0, max_gap_s=3.0)
    assert run.aligned == 40
    assert run.offset_s == pytest.approx(3.0, abs=0.1)


def test_no_matches_no_runs() -> None:
    empty = FrameMatches(
        *(np.zeros(0, np.int64),) * 2, np.zeros(0, np.float32), *(np.zeros(5, np.int64),) * 2
    )
    assert align_runs(empty, times(5), times(5), step_s=STEP_S, min_segment_s=1.0, max_gap_s=1.0) == []


# -- the prefilter, the distinctiveness margin and shadow runs --------------------------------------------
def test_the_prefilter_keeps_every_pair_it_can_prove_close() -> None:
    """Prefiltering on the leading bytes gives exactly the pairs that are close on both the lead and the
    whole hash (here the lead threshold is loose enough to keep every pair within the full one)."""
    a = random_hashes(50, 31)
    b = np.concatenate([noisy(a[:25], 0.08, 32), random_hashes(25, 33)])
    mask = random_hashes(1, 34)[0]
    full = hamming_matches(a, b, max_distance_bits=64, invert_mask=mask, top_k=100)
    fast = hamming_matches(
        a,
        b,
        max_distance_bits=64,
        invert_mask=mask,
        top_k=100,
        prefilter_bytes=8,
        prefilter_max_distance_bits=64,
    )
    for x, y in zip(full, fast, strict=True):
        assert sorted(zip(x.source_index, x.target_index, strict=True)) == sorted(
            zip(y.source_index, y.target_index, strict=True)
        )
        assert np.array_equal(x.source_counts, y.source_counts)
    tight = hamming_matches(a, b, max_distance_bits=64, prefilter_bytes=8, prefilter_max_distance_bits=0)[0]
    d = brute_distances(a[:, :8], b[:, :8])
    assert all(d[i, j] == 0 for i, j in zip(tight.source_index, tight.target_index, strict=True))


def test_partners_are_counted_near_the_best_match_only() -> None:
    """A sample 2 bits from its copy and 40+ from the other frames of its shot has one partner; a still
    frame repeated 30 times has 30, however the margin is set."""
    shot = noisy(np.repeat(random_hashes(1, 40), 30, axis=0), 0.18, 41)  # ~46 bits apart from each other
    copy = noisy(shot, 0.008, 42)
    (m,) = hamming_matches(shot, copy, max_distance_bits=64, distinct_margin_bits=4, top_k=30)
    assert np.median(m.source_counts) == 1
    still = np.repeat(random_hashes(1, 43), 30, axis=0)
    (s,) = hamming_matches(still, still, max_distance_bits=64, distinct_margin_bits=4, top_k=30)
    assert (s.source_counts == 30).all() and (s.target_counts == 30).all()


def test_a_parallel_shadow_of_a_run_is_dropped() -> None:
    """Two nearly identical diagonals one step apart (slow footage) are one overlap, not two."""
    a = random_hashes(40, 50)
    slow = np.repeat(a, 2, axis=0)[:40]  # every picture held for two samples
    runs = runs_for(slow, noisy(slow, 0.02, 51))
    assert len(runs) == 1
