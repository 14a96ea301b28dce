"""Known answers of music_vae_nb.music: metre, rhythm, tonality and melody from MIDI and from rendered audio.

Synthetic and exact: a 6/8 and a 2/4 pattern at the same tempo (with and without a time signature), a major
and a minor cadence in every key, a dotted and an even rhythm. The audio paths are the ones the store runs
(our own onset envelope and peak picking; chroma without a tuning estimate), so a numba crash would show here.
"""
import numpy as np
import pytest
import pretty_midi

import music_vae_nb.music as M
from music_vae_nb.features import spectra

MIDI_NAMES = M.midi_music_feature_names()
AUDIO_NAMES = M.audio_music_feature_names()


def _m(pm, name, beat="score"):
    return M.midi_music_features(pm, beat)[MIDI_NAMES.index(name)]


@pytest.mark.parametrize("declare", [True, False])
def test_metre_from_score_beats_separates_6_8_from_2_4(declare):
    six, two = M.metre_pattern("6/8", declare=declare), M.metre_pattern("2/4", declare=declare)
    assert _m(six, "ac1.5/ac1") > 1 > _m(two, "ac1.5/ac1")
    assert _m(six, "metricity_bar1.5[beats]") > _m(two, "metricity_bar1.5[beats]")
    assert _m(six, "ts_compound") == float(declare) and _m(two, "ts_compound") == 0.0
    assert _m(six, "ts_declared") == _m(two, "ts_declared") == float(declare)


def test_metre_from_estimated_beats_reads_the_subdivision():
    six, two = (M.midi_music_features(M.metre_pattern(m, declare=False), "estimate") for m in ("6/8", "2/4"))
    pos = lambda v, i: v[MIDI_NAMES.index(f"beat_pos{i}/12")]
    assert pos(six, 4) > 0 and pos(six, 8) > 0 and pos(six, 6) == 0          # thirds of the beat
    assert pos(two, 6) > 0 and pos(two, 4) == pos(two, 8) == 0               # halves of the beat


@pytest.mark.skipif(not M.SOUNDFONT.exists(), reason="no soundfont: the plucked-sine fallback does not carry the accents")
def test_metre_from_rendered_audio():
    f = {m: dict(zip(AUDIO_NAMES, M.audio_music_features(M.render(M.metre_pattern(m, declare=False)))))
         for m in ("6/8", "2/4")}
    assert abs(f["6/8"]["tempo[BPM]"] - 80) < 2 and abs(f["2/4"]["tempo[BPM]"] - 120) < 2
    assert f["6/8"]["triple-duple"] > 0.2 > f["2/4"]["triple-duple"]


def test_key_invariant_histogram_is_identical_in_every_key():
    tonal = [i for i, n in enumerate(MIDI_NAMES) if n.startswith(("pc_rel", "r_", "major", "key_", "final_"))]
    ev = MIDI_NAMES.index("major-minor")
    for mode, t0 in (("major", 60), ("minor", 57)):
        V = np.stack([M.midi_music_features(M.cadence(t0 + k, mode)) for k in range(-6, 6)])
        np.testing.assert_allclose(V[:, tonal], np.repeat(V[:1, tonal], 12, axis=0), atol=1e-6)
        assert np.sign(V[:, ev]).tolist() == [1.0 if mode == "major" else -1.0] * 12
    assert M.estimate_key(M.pitch_class_histogram(M.cadence(62, "minor"))) == (2, "minor")


def test_mode_from_rendered_audio_has_opposite_signs():
    ev = AUDIO_NAMES.index("major-minor")
    for t in (55, 62):
        assert M.audio_music_features(M.render(M.cadence(t, "major", 0.6)))[ev] > 0
        assert M.audio_music_features(M.render(M.cadence(t, "minor", 0.6)))[ev] < 0


def test_long_short_share_dotted_vs_even():
    dotted = np.cumsum([0] + [0.75, 0.25] * 8)[:-1]; even = np.arange(16) * 0.5
    i = len(M.IOI_BINS)
    assert M.rhythm_features(dotted, dotted)[i] == 1.0 and M.rhythm_features(even, even)[i] == 0.0
    pm = M._score([[(60 + k % 2, s, s + d) for k, (s, d) in enumerate(zip(dotted / 2, [0.375, 0.125] * 8))]], 120.0)
    assert _m(pm, "longshort_share") == 1.0                                     # the same from a score


def test_melody_and_final_sonority():
    np.testing.assert_array_equal(M.melody_features([60, 62, 64, 60, 60]),
                                  np.array([0.25, 0.5, 0.25, 2.0, 4, 0.25, 0.5], np.float32))
    N = M.note_beats(M.cadence(57, "minor"))
    assert M.final_features(N, 9).tolist() == [1, 0, 0, 1]                      # A minor ends on A with C


def test_audio_features_reuse_the_shared_spectra():
    y = M.render(M.cadence(60, "major", 0.6))
    np.testing.assert_array_equal(M.audio_music_features(y), M.audio_music_features(y, spec=spectra(y)))
    assert M.audio_music_features(y).shape == (len(AUDIO_NAMES),) == (57,)


def test_empty_inputs():
    with pytest.raises(ValueError, match="no notes"):
        M.midi_music_features(pretty_midi.PrettyMIDI())
    f = M.audio_music_features(np.zeros(16_000, np.float32))
    assert np.isfinite(f).all()


def test_triple_evidence_reads_the_bar_without_a_declaration():
    on = np.arange(0, 36, 1.0)
    waltz, march = np.where(on % 3 == 0, 2.0, 1.0), np.where(on % 2 == 0, 2.0, 1.0)   # long note every 3rd / 2nd quarter
    assert M.triple_evidence(M.metre_fits(on, waltz)) > 0 > M.triple_evidence(M.metre_fits(on, march))
    np.testing.assert_allclose(M.metre_fits(on + 0.5, waltz), M.metre_fits(on, waltz))   # phase-free
    for declare in (True, False):                                                    # 6/8 and 2/4 patterns: duple both
        six, two = (M.midi_music_features(M.metre_pattern(m, declare=declare)) for m in ("6/8", "2/4"))
        assert six[MIDI_NAMES.index("fit_6/8")] > six[MIDI_NAMES.index("fit_3/4")]
        assert two[MIDI_NAMES.index("fit_2/4")] > two[MIDI_NAMES.index("fit_3/4")]
        assert two[MIDI_NAMES.index("bar_triple-duple")] < 0


def test_period_contrast_reads_accent_every_third_beat():
    assert [M.period_contrast(np.tile(x, 24 // len(x))) for x in ([1., 0, 0], [1., 0], [1., 0, 0, 0], [1., 1])] == [1.0, -1.0, -1.0, 0.0]
    assert M.period_contrast(np.roll(np.tile([2., 0, 1], 8), 1)) == 1.0            # phase-free


def test_triple_duple_evidence_waltz_vs_march():
    waltz = np.array([[t, t + (2 if t % 3 == 0 else 1), 60 + (t % 3 == 0), 0] for t in range(36)]
                     + [[t, t + 3, 48 + 7 * (t % 6 == 3), 1] for t in range(0, 36, 3)], float)
    march = np.array([[t, t + (2 if t % 4 == 0 else 1), 60 + (t % 4 == 0), 0] for t in range(36) if t % 4 != 1]
                     + [[t, t + 2, 48 + 7 * (t % 4 == 2), 1] for t in range(0, 36, 2)], float)
    assert (M.triple_duple_evidence(waltz) > 0).all() and (M.triple_duple_evidence(march) < 0).all()
    assert (M.triple_cues(M.triple_duple_evidence(march)) == 0).all()
    np.testing.assert_array_equal(M.triple_cues(M.triple_duple_evidence(waltz)), M.triple_duple_evidence(waltz))


def test_triple_cues_are_the_positive_side_of_the_evidence_in_the_vector():
    v = dict(zip(MIDI_NAMES, M.midi_music_features(M.metre_pattern("2/4", declare=False))))
    ev = {"bar": v["bar_triple-duple"], **{c: v[f"tri-dup_{c}"] for c in ("onsets", "long_notes", "harmony", "bass", "ac6/ac4")}}
    assert all(v[f"tri-cue_{c}"] == np.float32(max(e, 0.0)) for c, e in ev.items())
    assert any(e < 0 for e in ev.values())                                        # a duple pattern: some cue reads duple, and its triple side is 0
    N = np.array([[0, 2, 60, 0], [2, 3, 62, 0], [3, 5, 64, 0], [5, 6, 62, 0], [0, 3, 48, 1], [3, 6, 43, 1]], float)
    np.testing.assert_array_equal(M.beat_accents(N), [[5, 0, 1, 5, 0, 1, 0], [2, 0, 0, 2, 0, 0, 0], [0, 0, 1, 4, 0, 2, 2], [0, 0, 0, 1, 0, 0, 1]])


def test_mode_evidence_under_both_weightings_in_every_key():
    cols = [i for i, n in enumerate(MIDI_NAMES) if n.startswith("major-minor")]
    assert [MIDI_NAMES[i] for i in cols][-3:] == ["major-minor_notes", "major-minor_notes_ae", "major-minor_notes_tkp"]
    for mode, t0 in (("major", 60), ("minor", 57)):
        V = np.stack([M.midi_music_features(M.cadence(t0 + k, mode)) for k in range(-6, 6)])[:, cols]
        assert (np.sign(V) == (1 if mode == "major" else -1)).all()


def test_comb_period_and_audio_harmony_metre():
    env = np.zeros(1000); env[::30] = 1.0; env[::90] += 1.0; env[15::30] += 0.9
    assert M.comb_period(env, 50.0) == 30.0

    def dance(bar, beats=48, beat=0.5):
        roots = [0, 5, 7, 0]
        mel = [(72, t * beat, (t + 1) * beat) for t in range(beats)]
        low = [(48 + roots[(t // bar) % 4] + d, t * beat, (t + bar) * beat) for t in range(0, beats, bar) for d in (0, 4, 7)]
        return M.render(M._score([mel, low], 120.0))
    ev = {bar: dict(zip(AUDIO_NAMES, M.audio_music_features(dance(bar))))["tri-dup_harmony"] for bar in (3, 4)}
    assert ev[3] > 0.5 and ev[4] < -0.5


def test_metre_blocks_hold_the_triple_duple_evidence():
    und = [MIDI_NAMES[i] for i in M.block_columns(MIDI_NAMES, "metre_undeclared")]
    cues = ["bar", "onsets", "long_notes", "harmony", "bass", "ac6/ac4"]
    assert und == ["bar_triple-duple"] + [f"tri-dup_{c}" for c in cues[1:]] + [f"tri-cue_{c}" for c in cues]
    assert [MIDI_NAMES[i] for i in M.block_columns(MIDI_NAMES, "metre")] == [n for n in MIDI_NAMES if n.startswith("ts_")] + und
    assert [AUDIO_NAMES[i] for i in M.block_columns(AUDIO_NAMES, "metre_undeclared")] == [
        "tri-dup_harmony", "tri-cue_harmony", "pitchnov_metricity_bar1.5[beats]", "pitchnov_metricity_bar3[beats]", "pitchnov_fit_3/4",
        "tri-dup_onsets", "tri-dup_long_notes"]


def test_pitch_novelty_metre_cues_separate_compound_from_simple_without_a_declaration():
    P = {m: dict(zip(M.pitch_metre_names(), M.pitch_metre_cues(M.render(M.metre_pattern(m, declare=False))))) for m in ("6/8", "2/4")}
    assert all(P["6/8"][c] < P["2/4"][c] - 0.1 for c in ("pitchnov_fit_2/4", "pitchnov_fit_3/4", "pitchnov_fit_4/4")), P
    assert np.isfinite(M.pitch_metre_cues(np.zeros(16_000, np.float32))).all()


def test_notes_heard_on_the_beat_grid_read_the_bar_from_audio():
    K = M.harmonic_kernel()
    assert K.shape == (M.HARMONIC_PARTIALS, M.NOTE_BANDS[1] - M.NOTE_BANDS[0], M.NOTE_PITCHES[1] - M.NOTE_PITCHES[0])
    assert K[1, 81 - M.NOTE_BANDS[0], 69 - M.NOTE_PITCHES[0]] == 1.0                   # A4's second partial: A5
    sr = 16_000; t = np.arange(2 * sr) / sr
    chord = sum(sum(a * np.sin(2 * np.pi * (h + 1) * 440 * 2 ** ((p - 69) / 12) * t) for h, a in enumerate([1, .5, .33, .25, .2, .16]))
                for p in (48, 55, 64)).astype(np.float32)
    H, profile = M.pitch_activations(M.slot_spectra(chord, 16.0, 0.0))
    assert sorted(M.NOTE_PITCHES[0] + np.argsort(-H.mean(1))[:3]) == [48, 55, 64] and profile.max() == 1.0

    def hymn(bar, beats=60, beat=0.5):                                                 # a chord held for each bar under a melody
        mel = [(72 + (2, 0, 4)[i % 3], i * beat, (i + 1) * beat) for i in range(beats)]
        low = [(48 + (0, 5, 7, 0)[(i // bar) % 4] + d, i * beat, (i + bar) * beat) for i in range(0, beats, bar) for d in (0, 4, 7)]
        return M.render(M._score([mel, low], 120.0))
    cues = {bar: dict(zip(AUDIO_NAMES, M.audio_music_features(hymn(bar)))) for bar in (3, 4)}
    assert cues[3]["tri-dup_onsets"] > 0.3 > -0.3 > cues[4]["tri-dup_onsets"], cues
    assert cues[3]["tri-dup_long_notes"] > cues[4]["tri-dup_long_notes"] + 0.5
    assert M.note_metre_cues(np.zeros(32_000, np.float32)).tolist() == [0.0, 0.0]


# Rhythm a musician would name: four two-voice lines (compound 6/8, dotted, even, syncopated), no time signature.
RHYTHM_NAMES = M.rhythm_feature_names()


def _r(v, name):
    return v[RHYTHM_NAMES.index(name)]


@pytest.mark.parametrize("beat", ["estimate", "score"])
def test_rhythm_from_midi_known_answers(beat):
    R = {k: M.midi_rhythm_features(M.rhythm_line(k), beat) for k in M.RHYTHM_LINES}
    assert _r(R["compound"], "rhy_compound-simple") > 0.4
    assert all(_r(R[k], "rhy_compound-simple") < -0.3 for k in ("dotted", "even", "syncopated"))
    assert np.nonzero(R["compound"][:12])[0].tolist() == [0, 4, 8]          # thirds of a dotted-quarter beat
    assert np.nonzero(R["dotted"][:12])[0].tolist() == [0, 9]
    assert np.nonzero(R["even"][:12])[0].tolist() == [0, 6]
    assert abs(_r(R["dotted"], "rhy_npvi") - 100) < 1e-3 and abs(_r(R["even"], "rhy_npvi")) < 1e-3
    assert _r(R["dotted"], "rhy_ioi_ratio3") + _r(R["dotted"], "rhy_ioi_ratio0.333") > 0.99
    assert _r(R["syncopated"], "rhy_syncopation") > 0.3
    assert all(_r(R[k], "rhy_syncopation") == 0 for k in ("compound", "dotted", "even"))


def test_rhythm_never_reads_the_time_signature():
    pm = M.rhythm_line("compound")
    a = M.midi_rhythm_features(pm)
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]      # a wrong declaration changes nothing
    np.testing.assert_array_equal(M.midi_rhythm_features(pm), a)


def test_rhythm_is_tempo_free():
    for k in ("compound", "dotted", "even"):
        np.testing.assert_allclose(M.midi_rhythm_features(M.rhythm_line(k, 120, 40 / 3)),
                                   M.midi_rhythm_features(M.rhythm_line(k, 80, 20.0)), atol=1e-4)


@pytest.mark.skipif(not M.SOUNDFONT.exists(), reason="no soundfont")
@pytest.mark.parametrize("program", [0, 24, 73])                            # piano (struck), guitar (plucked), flute (blown)
def test_rhythm_from_rendered_audio(program):
    A = {k: M.audio_rhythm_features(M.render(M.rhythm_line(k, 80, 12.0, program))) for k in ("compound", "dotted", "even")}
    assert _r(A["compound"], "rhy_compound-simple") > 0.3
    assert _r(A["dotted"], "rhy_compound-simple") < -0.3 and _r(A["even"], "rhy_compound-simple") < -0.2
    assert _r(A["even"], "rhy_sub_half") > 0.25 and _r(A["dotted"], "rhy_sub_quarters") > 0.3
    assert _r(A["dotted"], "rhy_npvi") > _r(A["even"], "rhy_npvi") + 20


def test_panel_choice_weighs_every_target_alike_and_chooses_per_fold():
    v = np.array([[[0.2, 0.4], [0.6, 0.6]],              # target means 0.3, 0.6 -> 0.45; fold means 0.4, 0.5
                  [[0.5, 0.1], [0.5, np.nan]],            # 0.3, 0.5 -> 0.40; fold means 0.5, 0.1
                  [[0.4, 0.4], [0.5, 0.5]],               # 0.45, a tie with the first candidate
                  [[np.nan, np.nan], [np.nan, np.nan]]])  # no scores: never chosen
    best, per_fold = M.panel_choice(v)
    assert best == 0 and per_fold.tolist() == [1, 0]
    assert M.panel_choice(v[[3, 2]])[0] == 1


def test_frozen_panel_blocks_read_their_sets_without_the_declaration():
    rn = M.rhythm_feature_names()
    assert [rn[i] for i in M.block_columns(rn, "rhythm_panel_midi")] == [n for n in rn if n.startswith("rhy_bar_")]
    assert M.block_columns(AUDIO_NAMES, "rhythm_panel_audio") == M.block_columns(AUDIO_NAMES, "metre_undeclared")
    assert M.PANEL_BLOCKS == {"midi": ("midi_rhythm", "rhythm_panel_midi"), "audio": ("audio_music", "rhythm_panel_audio")}
    assert not any(MIDI_NAMES[i].startswith("ts_") for i in M.block_columns(MIDI_NAMES, "rhythm_panel_audio"))
