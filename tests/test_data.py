"""Several corpora: manifests decide what is read, a work shared by two corpora stays on one side,
one corpus reads as it always did, and corpus weights set how often each is drawn."""

import numpy as np
import pytest
from conftest import write_corpus, write_manifest

from musicgen import data
from musicgen.credits import weights_licence
from musicgen.data import Piece, assign_splits, corpus_splits, load_corpus, shared_works
from musicgen.errors import MusicgenError
from musicgen.train import StreamSampler, TrainConfig, WindowSampler

NAMES = [f"{c}/p{i}.mid" for c in ("alpha", "beta") for i in range(6)]


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """A piano-midi-de-like root (no manifest) and a mutopia-like one whose manifest holds one file
    out, drops one and does not list one."""
    base = tmp_path_factory.mktemp("corpora")
    first = write_corpus(base / "piano-midi-de", NAMES)
    names = ["alpha/m0.mid", "alpha/m1.mid", "alpha/m2.mid", "gamma/g0.mid", "gamma/held.mid",
             "gamma/dup.mid", "gamma/unlisted.mid"]
    second = write_corpus(base / "mutopia", names, shift=2)
    rows = [("alpha/m0.mid", "taken"), ("alpha/m1.mid", "taken"), ("alpha/m2.mid", "taken"),
            ("gamma/g0.mid", "taken"), ("gamma/held.mid", "held out: ASAP eval work"),
            ("gamma/dup.mid", "dropped: duplicate of x, y"), ("", "held out: not copied")]
    write_manifest(second, [{"file": f, "title": "Sonata, Op. 1", "decision": d} for f, d in rows])
    return first, second


def test_one_root_without_manifest_reads_as_before(two_corpora, tmp_path):
    first, _ = two_corpora
    corpus, tok = load_corpus(first, cache_dir=tmp_path)
    assert corpus.roots == [str(first)]
    assert sorted(p.path for p in corpus.pieces) == sorted(NAMES)  # no prefix
    assert {p.path: p.split for p in corpus.pieces} == assign_splits(NAMES)
    assert {p.corpus for p in corpus.pieces} == {"piano-midi-de"}
    cached = sorted(tmp_path.glob("corpus-*.npz"))
    again, _ = load_corpus(str(first), tok, cache_dir=tmp_path)  # read from the one cache file
    assert sorted(tmp_path.glob("corpus-*.npz")) == cached and len(cached) == 1
    assert all((a.ids == b.ids).all() for a, b in zip(corpus.pieces, again.pieces))


def test_later_roots_are_prefixed_and_share_style_tokens(two_corpora, tmp_path):
    first, second = two_corpora
    corpus, tok = load_corpus([first, second], cache_dir=tmp_path)
    paths = {p.path: p for p in corpus.pieces}
    assert paths["mutopia/alpha/m0.mid"].style == "alpha" == paths["alpha/p0.mid"].style
    assert paths["mutopia/alpha/m0.mid"].corpus == "mutopia"
    assert sorted(t for t in tok.vocab if t.startswith("Style_")) == \
        ["Style_alpha", "Style_any", "Style_beta", "Style_gamma"]
    assert {p.path: p.split for p in corpus.pieces if p.corpus == "piano-midi-de"} == assign_splits(NAMES)


def test_files_a_manifest_does_not_take_are_never_read(two_corpora, tmp_path):
    _, second = two_corpora
    assert data.taken_files(second) == ["alpha/m0.mid", "alpha/m1.mid", "alpha/m2.mid", "gamma/g0.mid"]
    corpus, _ = load_corpus(second, cache_dir=tmp_path)
    assert sorted(p.path for p in corpus.pieces) == data.taken_files(second)  # in no split at all


def test_a_manifest_without_a_decision_column_takes_what_it_lists(tmp_path):
    root = write_corpus(tmp_path / "pop909", ["pop/001.mid", "pop/002.mid"])
    write_manifest(root, [{"file": "pop/001.mid", "name": "a, b"}])
    assert data.taken_files(root) == ["pop/001.mid"]


def test_a_work_in_two_corpora_takes_its_piano_midi_de_side():
    pmd = NAMES
    sides = assign_splits(pmd)
    held = next(p for p in pmd if sides[p] == "test")
    kept = next(p for p in pmd if sides[p] == "train")
    mutopia = [f"alpha/m{i}.mid" for i in range(10)]
    extra = ["alpha/e0.mid", "alpha/e1.mid", "alpha/e2.mid"]
    table = (f"{held} mutopia/m0.mid ; {kept} mutopia/m1.mid\n"
             "piano-midi-de-extra/alpha/e0.mid mutopia/m2.mid\n    mutopia/alpha/m3.mid\n")
    files = {"piano-midi-de": pmd, "mutopia": mutopia, "piano-midi-de-extra": extra}
    out = corpus_splits(files, table)
    assert out["mutopia", "alpha/m0.mid"] == "test" and out["mutopia", "alpha/m1.mid"] == "train"
    e0 = assign_splits(extra)["alpha/e0.mid"]
    assert out["mutopia", "alpha/m2.mid"] == e0 == out["mutopia", "alpha/m3.mid"]  # no piano-midi-de version
    assert {p: out["piano-midi-de", p] for p in pmd} == sides  # piano-midi-de's split never moves
    alone = corpus_splits({"mutopia": mutopia}, table)  # an anchor not loaded: the next version leads
    assert alone["mutopia", "alpha/m3.mid"] == alone["mutopia", "alpha/m2.mid"]


def test_the_shared_works_table_lists_each_version_once_and_anchors_on_piano_midi_de():
    works = shared_works()
    versions = [v for work in works for v in work]
    assert len(versions) == len(set(versions)) and all(len(w) >= 2 for w in works)
    assert not [w for w in works if any(c == data.PMD for c, _ in w[1:])]  # a pmd file is only an anchor
    assert {c for c, _ in versions} == {"piano-midi-de", "piano-midi-de-extra", "mutopia", "giantmidi-piano"}
    kv331 = next(w for w in works if w[0][1] == "mozart/mz_331_1.mid")
    assert ("mutopia", "mozart/KV331_1_7_var6.mid") in kv331 and len(kv331) == 8  # theme, 6 variations


def test_two_roots_with_one_folder_name_are_refused(two_corpora, tmp_path):
    first, _ = two_corpora
    twin = write_corpus(tmp_path / "x" / "piano-midi-de", ["alpha/a.mid"])
    with pytest.raises(MusicgenError, match="share a name"):
        load_corpus([first, twin], cache_dir=tmp_path)


def test_the_recorded_roots_are_read_back_and_a_missing_one_is_named(two_corpora):
    first, second = two_corpora
    assert data.data_root({"data_roots": [str(first), str(second)]}) == [first, second]
    assert data.data_root({"data_root": str(first)}) == [first]  # checkpoints before several corpora
    assert data.data_root({}, [str(second)]) == [second]
    with pytest.raises(MusicgenError, match="/nowhere"):
        data.data_root({"data_roots": [str(first), "/nowhere"]})


class _Tok:
    """The parts of a tokenizer the samplers use."""
    vocab = {"PAD": 0, "Style_any": 1, "Style_a": 2, "Style_b": 3}
    pad_token_id = 0


def pieces(n_tokens=(100, 100, 100, 100)):
    return [Piece(f"{c}/{i}.mid", c, "train", np.arange(10, 10 + n, dtype=np.int16) % 200, corpus=c)
            for i, (c, n) in enumerate(zip("aabb", n_tokens))]


def test_corpus_weights_set_the_draw_proportions():
    sampler = WindowSampler(pieces(), _Tok, 8, transpose=0, style_dropout=0.0, weights={"b": 0.25})
    np.testing.assert_allclose(sampler.weights, [0.4, 0.4, 0.1, 0.1])
    firsts = np.concatenate([sampler.batch(100)[0][:, 0].numpy() for _ in range(40)])
    assert abs((firsts == 3).mean() - 0.2) < 0.02  # 4000 windows, a fifth of them from b
    assert sampler.describe() == "a 80%, b 20%"
    unweighted = WindowSampler(pieces((100, 300, 100, 100)), _Tok, 8, transpose=0, weights={})
    np.testing.assert_allclose(unweighted.weights, [1 / 6, 1 / 2, 1 / 6, 1 / 6])  # by length, as before
    streams = StreamSampler(pieces((100, 300, 100, 100)), _Tok, 8, transpose=0, weights={"b": 0.25})
    np.testing.assert_allclose(streams.weights, [0.4, 0.4, 0.1, 0.1])  # a piece is read whole
    np.testing.assert_allclose(streams.token_share, np.array([100, 300, 25, 25]) / 450)


def test_corpus_weights_are_checked_on_the_command_line():
    weights = TrainConfig(corpus_weights=("pop909=0.5", "mutopia=2")).weights()
    assert weights == {"pop909": 0.5, "mutopia": 2.0}
    for bad in ("pop909", "=1", "pop909=-1", "pop909=nan"):
        with pytest.raises(MusicgenError, match="--corpus-weights"):
            TrainConfig(corpus_weights=(bad,))


def test_stream_rows_continue_their_piece_and_say_when_a_new_one_starts():
    one = [Piece("a/0.mid", "a", "train", np.arange(10, 30, dtype=np.int16), corpus="a")]  # 20 tokens
    s = StreamSampler(one, _Tok, 8, transpose=0, style_dropout=0.0)
    x1, y1, f1 = s.batch(1)
    x2, y2, f2 = s.batch(1)
    x3, y3, f3 = s.batch(1)
    x4, _, f4 = s.batch(1)
    assert x1[0].tolist() == [2, *range(10, 17)] and y1[0].tolist() == list(range(10, 18))
    assert x2[0].tolist() == list(range(17, 25)) and y2[0].tolist() == list(range(18, 26))
    assert x3[0].tolist() == [25, 26, 27, 28, 29, 0, 0, 0] and y3[0].tolist() == [26, 27, 28, 29, 0, 0, 0, 0]
    assert [f1.item(), f2.item(), f3.item(), f4.item()] == [True, False, False, True]
    assert x4[0, 0] == 2  # the next piece opens with its style token


@pytest.mark.parametrize("licences, expected", [
    (["CC BY-SA 3.0 DE"], "CC BY-SA 3.0 DE"),
    (["CC BY-SA 3.0 DE", "Public Domain", "CC BY 2.5", "CC BY-SA 2.5", "CC BY-SA 4.0", "CC BY 4.0", "MIT"],
     "CC BY-SA 4.0"),
    (["CC BY 4.0", "MIT"], "CC BY 4.0"),
    (["MIT"], "MIT"),
], ids=["piano-midi-de", "all-five", "by-and-mit", "mit"])
def test_the_weights_licence_satisfies_every_corpus(licences, expected):
    assert weights_licence(licences) == expected
    assert weights_licence(licences + ["unknown"]).startswith("unknown")
