"""The corpora: find MIDI files, read manifests, split by work, tokenize once (cached).

Several corpus folders train one model. Each is split alone by the hash of its paths (so
piano-midi-de's split never changes), then every version of a work that another corpus also has
takes the side of one version (the piano-midi-de one where there is one), so no work is on both
sides. A corpus's `manifest.csv`, where it has one, says which files were taken.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen import tokenizer as tk
from musicgen.errors import MusicgenError

log = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("MUSICGEN_CACHE", Path.home() / ".cache" / "musicgen"))
# music21's own corpus: the training set of last resort on a machine without ../shared
FALLBACK_COMPOSERS = {"bach": 150, "beethoven": 26, "mozart": 16, "haydn": 9, "monteverdi": 40}
MANIFEST = "manifest.csv"  # a corpus's list of candidate files; only rows whose decision is "taken" count
TAKEN = "taken"
PMD = "piano-midi-de"  # its split is the one the shipped model was trained on; its versions anchor works


@dataclass
class Piece:
    path: str  # the key of the split: relative to its root, behind the root's name unless the first root
    style: str  # the composer, from the first folder level inside its root
    split: str  # "train", "val" or "test"
    ids: np.ndarray  # token ids, without the style token
    corpus: str = ""  # the root's folder name (piano-midi-de, mutopia, pop909, ...)


@dataclass
class Corpus:
    roots: list[str]
    pieces: list[Piece]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of skipped files

    def split(self, name: str) -> list[Piece]:
        """The pieces of one split."""
        return [p for p in self.pieces if p.split == name]

    def split_table(self) -> dict[str, list[str]]:
        """{split: [relative paths]}, written beside every run."""
        return {s: sorted(p.path for p in self.split(s)) for s in ("train", "val", "test")}


def find_midi_files(root: str | Path) -> list[Path]:
    """Every .mid/.midi under root, any case, in a stable order."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in tk.MIDI_SUFFIXES)


def read_manifest(root: str | Path) -> dict[str, dict[str, str]] | None:
    """{file: its row} of the root's manifest.csv (csv module: titles hold commas); None without one."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f) if row.get("file")}


def taken_files(root: str | Path) -> list[str]:
    """Relative paths of the MIDI files under root that its manifest takes: all of them without a
    manifest; with one, a file it holds out, drops or does not list is never read (a manifest without
    a `decision` column, as pop909's, takes every file it lists)."""
    root = Path(root)
    rels = [f.relative_to(root).as_posix() for f in find_midi_files(root)]
    manifest = read_manifest(root)
    if manifest is None:
        return rels
    taken = [r for r in rels if r in manifest and manifest[r].get("decision", TAKEN) == TAKEN]
    if len(taken) < len(rels):
        log.info("%s: %d of %d MIDI files not taken by its manifest", root, len(rels) - len(taken), len(rels))
    return taken


def style_of(rel: str) -> str:
    """The composer: the first folder level of the relative path ('any' for files at the root)."""
    parts = Path(rel).parts
    return parts[0].lower() if len(parts) > 1 else tk.ANY_STYLE


def path_rank(rel: str) -> str:
    """A fixed shuffle of the pieces: sorting by the path's SHA-1 is the same on every machine."""
    return hashlib.sha1(rel.encode()).hexdigest()


def deal_by_style(paths: list[str]) -> dict[str, list[str]]:
    """{composer: its paths in the fixed path-hash order}: the deck both the split and the critic's
    cross-validation folds are dealt from, so both stratify by composer the same way."""
    by_style: dict[str, list[str]] = {}
    for p in paths:
        by_style.setdefault(style_of(p), []).append(p)
    return {style: sorted(files, key=path_rank) for style, files in by_style.items()}


def assign_splits(paths: list[str], val: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Piece-level split from the relative paths alone, stratified by composer.

    Within each composer the files are ordered by a hash of their path; the first
    share goes to test, the next to validation. Every composer with three or more
    pieces gets at least one held-out piece of each kind.
    """
    out = {}
    for files in deal_by_style(paths).values():
        n = len(files)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        for i, f in enumerate(files):
            out[f] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def shared_works(table: str | None = None) -> list[list[tuple[str, str]]]:
    """SHARED_WORKS read: per work, its versions as (corpus folder name, relative path), anchor first."""
    works: list[list[tuple[str, str]]] = []
    for line in (SHARED_WORKS if table is None else table).splitlines():
        for i, entry in enumerate(line.split(";")):
            names = entry.split()
            if not names:
                continue
            if i == 0 and line[:1].isspace():  # a continued entry: more versions of the last work
                work, versions = works[-1], names
            else:
                anchor = names[0] if names[0].count("/") == 2 else f"{PMD}/{names[0]}"
                work, versions = [tuple(anchor.split("/", 1))], names[1:]
                works.append(work)
            folder = work[0][1].split("/")[0]
            work += [tuple((v if v.count("/") == 2 else v.replace("/", f"/{folder}/", 1)).split("/", 1))
                     for v in versions]
    return works


def corpus_splits(files: dict[str, list[str]], table: str | None = None) -> dict[tuple[str, str], str]:
    """{(corpus, relative path): split} for {corpus folder name: its taken files}.

    Each corpus is split alone (assign_splits), so a corpus's own split does not depend on the
    others it is loaded with; then the versions of each shared work take the side of the first
    version listed that is loaded: piano-midi-de's where it has one, so its split stays today's.
    """
    out = {(c, r): s for c, rels in files.items() for r, s in assign_splits(rels).items()}
    for work in shared_works(table):
        present = [v for v in work if v in out]
        for v in present[1:]:
            out[v] = out[present[0]]
    return out


def data_root(config: dict, data: str | list[str] = "") -> list[Path]:
    """The corpora to read: --data (one folder or several), else the ones the checkpoint was trained on."""
    given = [data] if isinstance(data, (str, Path)) else list(data)
    roots = [Path(r) for r in given if str(r)] or [Path(r) for r in config.get("data_roots", [])] \
        or [Path(config.get("data_root", "") or "")]
    for root in roots:
        if not str(root) or str(root) == "." or not root.is_dir():
            shown = "(none recorded)" if str(root) in ("", ".") else str(root)
            raise MusicgenError(f"the corpus folder {shown} does not exist; "
                                "pass --data DIR with the corpus this checkpoint was trained on")
    return roots


def split_pieces(pieces: list[Piece], config: dict, name: str) -> list[Piece]:
    """The pieces the checkpoint's own split put in `name`, in path order."""
    wanted = config.get("split", {}).get(name)
    if wanted is None:
        raise MusicgenError("the checkpoint records no train/val/test split (config.json 'split')")
    by_path = {p.path: p for p in pieces}
    missing = [w for w in wanted if w not in by_path]
    if missing:
        raise MusicgenError(f"{len(missing)} {name} pieces of the checkpoint are not in the corpus "
                            f"(first: {missing[0]}); is --data the corpus it was trained on?")
    return [by_path[w] for w in sorted(wanted)]


def with_style(piece: Piece, tokenizer) -> np.ndarray:
    """The stream the GRU is scored on: the piece's style token, then its tokens."""
    return np.concatenate([[tokenizer.vocab[tk.style_token(piece.style)]], piece.ids]).astype(np.int64)


def load_corpus(roots: str | Path | list, tokenizer=None, cache_dir: Path = CACHE_DIR) -> Corpus:
    """Tokenize every taken MIDI under each root (cached per root by file content and tokenizer),
    split by work across roots (corpus_splits).

    The first root's pieces keep their relative paths (so one root reads exactly as before); the
    others' paths start with their folder name (`mutopia/bach/x.mid`). The style is the composer
    folder inside each root, so `chopin/` of two corpora is one style. Unreadable files are skipped
    with a warning and listed in Corpus.bad. When no tokenizer is given, one is made with a style
    token per composer folder.
    """
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    names = [r.name for r in roots]
    if len(set(names)) < len(names):
        raise MusicgenError(f"two corpus folders share a name ({', '.join(names)}); piece paths would clash")
    files = {}
    for root in roots:
        files[root.name] = taken_files(root)
        if not files[root.name]:
            raise MusicgenError(f"no .mid/.midi files under {root}")
    if tokenizer is None:
        tokenizer = tk.make_tokenizer([style_of(r) for rels in files.values() for r in rels])
    splits = corpus_splits(files)
    pieces, bad = [], []
    for i, root in enumerate(roots):
        ids_by_rel, root_bad = _tokenize(root, files[root.name], tokenizer, cache_dir)
        key = (lambda r: r) if i == 0 else (lambda r, n=root.name: f"{n}/{r}")
        bad += [(key(r), reason) for r, reason in root_bad]
        pieces += [Piece(key(r), style_of(r), splits[root.name, r], ids_by_rel[r], root.name)
                   for r in files[root.name] if r in ids_by_rel]
    for rel, reason in bad:
        log.warning("skipped %s: %s", rel, reason)
    if not pieces:
        raise MusicgenError(f"none of the {sum(map(len, files.values()))} MIDI files under "
                            f"{', '.join(map(str, roots))} could be read")
    return Corpus([str(r) for r in roots], pieces, bad), tokenizer


def _tokenize(root: Path, rels: list[str], tokenizer, cache_dir: Path) -> tuple[dict, list]:
    """({relative path: ids}, [[path, reason] of unreadable files]) of one root, cached."""
    files = [root / r for r in rels]
    cache = _cache_path(cache_dir, tokenizer, files)
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        return {r: stored[r] for r in stored.files if r != "__bad__"}, json.loads(str(stored["__bad__"]))
    ids_by_rel, bad = {}, []
    for f, rel in zip(files, rels):
        try:
            score = tk.prepare(tk.read_midi(f))
            if score.note_num() == 0:
                raise MusicgenError("no piano notes")
            ids_by_rel[rel] = np.asarray(tk.encode(tokenizer, score), dtype=np.int16)
        except Exception as e:  # one bad file never aborts a run
            bad.append([rel, str(e)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, __bad__=np.array(json.dumps(bad)), **ids_by_rel)
    return ids_by_rel, bad


def _cache_path(cache_dir: Path, tokenizer, files: list[Path]) -> Path:
    h = hashlib.sha1(repr(sorted(tokenizer.vocab.items())).encode())
    h.update(tk.PREPARE_VERSION.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return cache_dir / f"corpus-{h.hexdigest()[:16]}.npz"


def fallback_corpus(cache_dir: Path = CACHE_DIR) -> Path:
    """Write part of music21's bundled corpus as MIDI, one folder per composer (cached)."""
    root = cache_dir / "music21-corpus"
    done = root / ".complete"
    if done.is_file():
        return root
    from music21 import corpus  # heavy; only needed on a machine without a MIDI corpus

    for composer, limit in FALLBACK_COMPOSERS.items():
        (root / composer).mkdir(parents=True, exist_ok=True)
        for path in corpus.getComposer(composer)[:limit]:
            out = root / composer / (Path(path).stem + ".mid")
            if out.exists():
                continue
            try:
                corpus.parse(path).write("midi", fp=str(out))
            except Exception as e:  # some corpus entries have no notes or odd encodings
                log.warning("music21 corpus %s skipped: %s", path, e)
    done.write_text("ok")
    return root


# Versions of one work in two corpora, one work per entry (entries split by ";", continued on lines
# that start with spaces): the anchor first, whose side every version takes, then the versions.
# The anchor is `folder/file` of piano-midi-de or `corpus/folder/file`; a version is `corpus/file` in
# the anchor's folder or `corpus/folder/file`. The manifests flag which files piano-midi.de also has
# (`pmd_overlap`), not which file: each was matched by its melody and checked by its title; the
# versions of works piano-midi.de lacks were found the same way (scripts/shared_works.py checks both).
# Godowsky's studies on Chopin and Albeniz are counted as versions of their originals, to be safe.
SHARED_WORKS = """
albeniz/alb_esp2.mid piano-midi-de-extra/godowsky/god_alb_esp2.mid
bach/bach_846.mid mutopia/wtk1-fugue1.mid mutopia/wtk1-prelude1.mid
bach/bach_847.mid mutopia/bwv847a.mid mutopia/fuga2.mid
bach/bach_850.mid mutopia/bwv850a.mid mutopia/bwv850b.mid
beeth/appass_2.mid mutopia/LVB_Sonate_57_2.mid ; beeth/appass_3.mid mutopia/LVB_Sonate_57_3.mid
beeth/beethoven_opus10_1.mid mutopia/LVB_Sonate_10no1_1.mid
beeth/beethoven_opus10_3.mid mutopia/LVB_Sonate_10no1_3.mid
beeth/beethoven_opus90_2.mid mutopia/LVB_Sonate_90_2.mid
beeth/elise.mid mutopia/fur_Elise_WoO59.mid ; beeth/mond_1.mid mutopia/moonlight1-a4.mid
beeth/mond_3.mid mutopia/moonlight3-a4-1.mid ; beeth/pathetique_1.mid mutopia/pathetique-1.mid
beeth/pathetique_2.mid mutopia/pathetique-2.mid ; beeth/pathetique_3.mid mutopia/pathetique-3.mid
mutopia/chopin/chopin-op-10-09-wfi.mid giantmidi-piano/Chopin_Etudes_Op10_g0hoN6_HDVU_no_9_cut.mid
chopin/chpn-p1.mid mutopia/Chop-28-1.mid ; chopin/chpn-p10.mid mutopia/Chop-28-10.mid
chopin/chpn-p11.mid mutopia/Chop-28-11.mid ; chopin/chpn-p12.mid mutopia/Chop-28-12.mid
chopin/chpn-p14.mid mutopia/Chop-28-14.mid ; chopin/chpn-p16.mid mutopia/Chop-28-16.mid
chopin/chpn-p17.mid mutopia/Chop-28-17.mid ; chopin/chpn-p18.mid mutopia/Chop-28-18.mid
chopin/chpn-p19.mid mutopia/Chop-28-19.mid ; chopin/chpn-p2.mid mutopia/Chop-28-2.mid
chopin/chpn-p20.mid mutopia/Chop-28-20.mid ; chopin/chpn-p21.mid mutopia/Chop-28-21.mid
chopin/chpn-p22.mid mutopia/Chop-28-22.mid ; chopin/chpn-p23.mid mutopia/Chop-28-23.mid
chopin/chpn-p24.mid mutopia/Chop-28-24.mid ; chopin/chpn-p3.mid mutopia/Chop-28-3.mid
chopin/chpn-p4.mid mutopia/Chop-28-4.mid ; chopin/chpn-p5.mid mutopia/Chop-28-5.mid
chopin/chpn-p8.mid mutopia/Chop-28-8.mid ; chopin/chpn-p9.mid mutopia/Chop-28-9.mid
chopin/chpn_op10_e01.mid piano-midi-de-extra/godowsky/god_chpn_op10_e01.mid
chopin/chpn_op10_e12.mid giantmidi-piano/Chopin_Etudes_Op10_g0hoN6_HDVU_no_12_cut.mid
    mutopia/op-10-12-wfi.mid
chopin/chpn_op23.mid mutopia/chopin-op23-ballade-1.mid
chopin/chpn_op25_e1.mid mutopia/chopin-op-25-01.mid
chopin/chpn_op27_2.mid mutopia/chopin-nocturne-8.mid
chopin/chpn_op35_4.mid mutopia/chp-op-35-4-scholz-fi-a4.mid
chopin/chpn_op66.mid mutopia/chopin_fantaisie-impromptu.mid
piano-midi-de-extra/clementi/clementi_opus36_1_1.mid mutopia/sonatina-1.mid
piano-midi-de-extra/clementi/clementi_opus36_1_2.mid mutopia/sonatina-1-1.mid
piano-midi-de-extra/clementi/clementi_opus36_1_3.mid mutopia/sonatina-1-2.mid
debussy/DEB_CLAI.MID giantmidi-piano/Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_3.mid
    mutopia/debussy_Ste_Bergamesq_Clair.mid
debussy/DEB_PASS.MID giantmidi-piano/Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_4.mid
debussy/deb_menu.mid giantmidi-piano/Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_2.mid
debussy/deb_prel.mid giantmidi-piano/Debussy_Suite_bergamasque_xAKeiyjjTKk_cut_no_1.mid
grieg/grieg_wedding.mid mutopia/troldhaugen.mid ; grieg/grieg_zwerge.mid mutopia/Troldtog.mid
liszt/liz_donjuan.mid giantmidi-piano/Liszt_Reminiscences_de_Don_Juan_S418_JI6JfJXcUjU_part1.mid
liszt/liz_rhap02.mid giantmidi-piano/Liszt_Franz_Hungarian_Rhapsody_No.2_S.244_2_LdH1hSWGFGU.mid
liszt/liz_rhap09.mid giantmidi-piano/Liszt_Hungarian_Rhapsody_No9_S244_9_JZfp5VsyIsc.mid
mendelssohn/mendel_op19_5.mid mutopia/5.Inquietude.mid
mendelssohn/mendel_op19_6.mid mutopia/Lieder-ohne-Worte-Venetianisches-Gondellied-Op19-No6.mid
mendelssohn/mendel_op53_5.mid mutopia/SongWW_opus53no5.mid
mozart/mz_331_1.mid mutopia/KV331_1_1_tema.mid mutopia/KV331_1_2_var1.mid mutopia/KV331_1_3_var2.mid
    mutopia/KV331_1_4_var3.mid mutopia/KV331_1_5_var4.mid mutopia/KV331_1_6_var5.mid
    mutopia/KV331_1_7_var6.mid
mozart/mz_331_2.mid mutopia/KV331_2_1_menuetto.mid
mozart/mz_331_3.mid mutopia/KV331_3_RondoAllaTurca.mid ; mozart/mz_545_1.mid mutopia/K545-1.mid
mozart/mz_545_2.mid mutopia/K545-2.mid ; mozart/mz_545_3.mid mutopia/K545-3.mid
muss/muss_1.mid mutopia/gnomus.mid mutopia/promenade-1.mid
muss/muss_2.mid mutopia/il-vecchio-castello.mid mutopia/promenade-2.mid
muss/muss_3.mid mutopia/promenade-3.mid mutopia/tuileries.mid
muss/muss_5.mid mutopia/ballet.mid mutopia/promenade-4.mid ; muss/muss_6.mid mutopia/two-jews.mid
muss/muss_7.mid mutopia/catacombae.mid mutopia/limoges.mid mutopia/promenade-5.mid
    mutopia/promenade-6.mid
muss/muss_8.mid mutopia/baba.mid
piano-midi-de-extra/rachmaninoff/rac_op23_2.mid mutopia/rach-prelude23-02.mid
piano-midi-de-extra/rachmaninoff/rac_op23_3.mid mutopia/rach-prelude23-03.mid
piano-midi-de-extra/rachmaninoff/rac_op23_5.mid mutopia/rach-prelude23-05.mid
piano-midi-de-extra/rachmaninoff/rac_op3_2.mid mutopia/rach-prelude-op3-no2.mid
piano-midi-de-extra/ravel/rav_eau.mid giantmidi-piano/Ravel_Maurice_Jeux_d_eau_v-QmwrhO3ec.mid
schubert/schub_d760_1.mid
    giantmidi-piano/Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_1.mid
schubert/schub_d760_2.mid
    giantmidi-piano/Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_2.mid
schubert/schub_d760_3.mid
    giantmidi-piano/Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_3.mid
schubert/schub_d760_4.mid
    giantmidi-piano/Schubert_Fantasie_in_C_major_D760_lR43Ti4w5MM_cut_mov_4.mid
schubert/schubert_D935_1.mid mutopia/SchubertF-D935-1-Impromptu.mid
schubert/schubert_D935_2.mid mutopia/SchubertF-D935-2-Impromptu.mid
schubert/schubert_D935_3.mid mutopia/SchubertF-D935-3-Impromptu.mid
schubert/schubert_D935_4.mid giantmidi-piano/Schubert_Impromptus_D935_06OBNoeKWBw_cut_no_4.mid
    mutopia/SchubertF-D935-4-Impromptu.mid
schubert/schuim-1.mid mutopia/SchubertF-D899-1-Impromptu.mid
schubert/schuim-2.mid mutopia/SchubertF-D899-2-Impromptu.mid
schubert/schuim-3.mid mutopia/SchubertF-D899-3-Impromptu.mid
schubert/schuim-4.mid giantmidi-piano/Schubert_Impromptus_D899_24DugWBRkYg_cut_no_4.mid
    mutopia/SchubertF-D899-4-Impromptu.mid
schubert/schumm-3.mid mutopia/MomentsNo3.mid ; schumann/scn15_1.mid mutopia/SchumannOp15No01.mid
schumann/scn15_2.mid mutopia/SchumannOp15No02.mid
schumann/scn15_3.mid mutopia/SchumannOp15No03.mid
schumann/scn15_4.mid mutopia/SchumannOp15No04.mid
schumann/scn15_5.mid mutopia/SchumannOp15No05.mid
schumann/scn15_6.mid mutopia/SchumannOp15No06.mid
schumann/scn15_7.mid mutopia/SchumannOp15No07.mid
schumann/scn68_10.mid mutopia/schumann-op68-10-gai-laboureur.mid
schumann/scn68_12.mid mutopia/schumann-op68-12-Pere-Fouettard.mid
tschai/ty_august.mid mutopia/Tschaikowsky-op37.8.mid
tschai/ty_februar.mid mutopia/Tschaikowsky-op37.2.mid
tschai/ty_januar.mid mutopia/Tschaikowsky-op37.1.mid
"""
