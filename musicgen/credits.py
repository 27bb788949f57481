"""Who made each corpus, under which licence, and the licence weights trained on them need.

Shared by everything that ships something fitted on the corpora: the generator's config.json
(train.py) and the ending model (ending.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from musicgen.data import Corpus

# {corpus folder: (credit, licences of its files)}, from each corpus's ATTRIBUTION.md
CORPORA = {
    "piano-midi-de": ("Bernd Krueger, piano-midi.de", ("CC BY-SA 3.0 DE",)),
    "piano-midi-de-extra": ("Bernd Krueger, piano-midi.de (via cheriell/ClassicalPianoMIDI-dataset)",
                            ("CC BY-SA 3.0 DE",)),
    "mutopia": ("MIDI rendered from Mutopia Project LilyPond editions (mutopiaproject.org), typeset by "
                "the volunteers named in its manifest.csv; licences per piece as listed there",
                ("Public Domain", "CC BY 2.5", "CC BY 3.0", "CC BY 4.0", "CC BY-SA 2.5", "CC BY-SA 3.0",
                 "CC BY-SA 4.0")),
    "giantmidi-piano": ("GiantMIDI-Piano, Qiuqiang Kong, Bochen Li, Jitong Chen and Yuxuan Wang (2020), "
                        "arXiv:2010.07061; 36 files selected, not changed", ("CC BY 4.0",)),
    "pop909": ("POP909, Ziyu Wang, Ke Chen, Junyan Jiang, Yiyi Zhang, Maoran Xu, Shuqi Dai, Guxian Bin "
               "and Gus Xia, ISMIR 2020; Copyright (c) 2020 Music X Lab", ("MIT",)),
}


def data_credits(corpus: Corpus) -> dict:
    """The corpora a run read, each with its credit and licences, and the licence its weights need."""
    rows = []
    for root in map(Path, corpus.roots):
        credit, licences = CORPORA.get(root.name, (None, ("unknown",)))
        note = root / "ATTRIBUTION.md"
        title = note.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if note.is_file() else ""
        rows.append({"root": str(root), "name": root.name, "pieces": sum(p.corpus == root.name for p in
                     corpus.pieces), "credit": credit or title or root.name, "licences": list(licences),
                     "attribution_file": title})
    return {"corpora": rows, "attribution": "; ".join(r["credit"] for r in rows),
            "weights_licence": weights_licence([lic for r in rows for lic in r["licences"]])}


def weights_licence(licences: list[str]) -> str:
    """The one licence under which weights trained on files with these licences may be shared.

    Share-alike wins: each CC BY-SA version (2.5, 3.0, 3.0 DE) lets an adaptation take a later version
    with the same elements and BY-SA 4.0 allows only itself, so several BY-SA versions meet at 4.0.
    CC BY, MIT and the public domain ask only for credit (MIT: its notice kept beside the weights).
    """
    if "unknown" in licences:
        return "unknown: a corpus has no licence on record; check it before sharing the weights"
    share_alike = sorted({lic for lic in licences if "BY-SA" in lic})
    if len(share_alike) > 1:
        return "CC BY-SA 4.0"
    if share_alike:
        return share_alike[0]
    return "CC BY 4.0" if any("CC BY" in lic for lic in licences) else "MIT"
