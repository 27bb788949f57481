"""Extract one preset (the FluidR3 GM grand piano) into its own small SF2 file.

Usage: python scripts/build_soundfont.py [--source FILE] [--bank 0] [--preset 0] [--out FILE]

The SF2 format (SoundFont 2.04 spec) is a RIFF file with three lists: INFO (text),
sdta (one big block of 16-bit samples) and pdta (nine fixed-size record tables that
point into each other by index: preset -> bags -> generators -> instrument -> bags ->
generators -> sample header -> sample data). We copy the chosen preset and only the
instruments and samples it reaches, renumbering indices as we go.
"""

import argparse
import struct
from pathlib import Path

SOURCE = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
OUT = Path(__file__).resolve().parents[1] / "soundfonts" / "fluidr3-grand-piano.sf2"

# Record sizes in bytes and generator operators, from the SoundFont 2.04 spec.
PHDR, BAG, MOD, GEN, INST, SHDR = 38, 4, 10, 4, 22, 46
GEN_INSTRUMENT, GEN_SAMPLE_ID = 41, 53
SAMPLE_PAD = 46  # the spec asks for at least 46 zero samples after each sample


def read_chunks(data: bytes, start: int, end: int) -> dict[str, bytes]:
    """Map chunk id -> body for the chunks between start and end; LISTs by their list type."""
    chunks, pos = {}, start
    while pos + 8 <= end:
        cid, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        if cid in (b"RIFF", b"LIST"):
            chunks[body[:4].decode()] = body[4:]
        else:
            chunks[cid.decode()] = body
        pos += 8 + size + (size & 1)
    return chunks


def records(table: bytes, size: int) -> list[bytes]:
    """Split a pdta table into its fixed-size records."""
    return [table[i : i + size] for i in range(0, len(table), size)]


def chunk(cid: str, body: bytes) -> bytes:
    """One RIFF chunk, padded to an even length."""
    return struct.pack("<4sI", cid.encode(), len(body)) + body + b"\0" * (len(body) & 1)


def list_chunk(kind: str, *parts: bytes) -> bytes:
    """A LIST chunk holding the given chunks."""
    return chunk("LIST", kind.encode() + b"".join(parts))


def zstr(text: str) -> bytes:
    """Zero-terminated, even-length INFO string."""
    raw = text.encode("ascii") + b"\0"
    return raw + b"\0" * (len(raw) & 1)


def extract(source: Path, bank: int, preset: int) -> tuple[bytes, str]:
    """Return the bytes of a new SF2 holding only (bank, preset) of source, and its name."""
    data = source.read_bytes()
    top = read_chunks(data, 0, len(data))["sfbk"]
    lists = read_chunks(top, 0, len(top))
    info, sdta, pdta = lists["INFO"], read_chunks(lists["sdta"], 0, len(lists["sdta"])), lists["pdta"]
    t = read_chunks(pdta, 0, len(pdta))
    phdr, pbag, pmod, pgen = (
        records(t["phdr"], PHDR),
        records(t["pbag"], BAG),
        records(t["pmod"], MOD),
        records(t["pgen"], GEN),
    )
    inst, ibag, imod, igen = (
        records(t["inst"], INST),
        records(t["ibag"], BAG),
        records(t["imod"], MOD),
        records(t["igen"], GEN),
    )
    shdr, smpl = records(t["shdr"], SHDR), sdta["smpl"]

    # Each table's last record is a terminator; record i's bags run up to record i+1's start.
    def bag_range(recs: list[bytes], i: int, offset: int) -> range:
        return range(
            struct.unpack_from("<H", recs[i], offset)[0], struct.unpack_from("<H", recs[i + 1], offset)[0]
        )

    found = [i for i, r in enumerate(phdr[:-1]) if struct.unpack_from("<HH", r, 20) == (preset, bank)]
    if not found:
        raise SystemExit(f"bank {bank} preset {preset} not in {source}")
    p = found[0]
    name = phdr[p][:20].split(b"\0")[0].decode("ascii", "replace")

    def copy_zones(
        bags, mods, gens, bag_idx: range, link_op: int, remap
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """Copy the bags of one preset/instrument with their modulators and generators, remapping link_op."""
        out_bags, out_mods, out_gens = [], [], []
        for b in bag_idx:
            out_bags.append(struct.pack("<HH", len(out_gens), len(out_mods)))
            out_mods += [mods[m] for m in bag_range(bags, b, 2)]
            for g in bag_range(bags, b, 0):
                op, amount = struct.unpack_from("<HH", gens[g])
                out_gens.append(struct.pack("<HH", op, remap(amount)) if op == link_op else gens[g])
        return out_bags, out_mods, out_gens

    inst_map: dict[int, int] = {}  # old instrument index -> new
    sample_map: dict[int, int] = {}  # old sample index -> new

    def new_inst(old: int) -> int:
        return inst_map.setdefault(old, len(inst_map))

    def new_sample(old: int) -> int:
        if old not in sample_map:
            sample_map[old] = len(sample_map)
            link = struct.unpack_from("<H", shdr[old], 42)[0]
            sample_type = struct.unpack_from("<H", shdr[old], 44)[0]
            if sample_type & 0x0E:  # right/left/linked: keep the stereo partner too
                new_sample(link)
        return sample_map[old]

    p_bags, p_mods, p_gens = copy_zones(pbag, pmod, pgen, bag_range(phdr, p, 24), GEN_INSTRUMENT, new_inst)

    # Instruments may be discovered while copying, so walk the map in insertion order.
    i_recs, i_bags, i_mods, i_gens, done = [], [], [], [], 0
    while done < len(inst_map):
        old = next(k for k, v in inst_map.items() if v == done)
        bags, mods, gens = copy_zones(ibag, imod, igen, bag_range(inst, old, 20), GEN_SAMPLE_ID, new_sample)
        i_recs.append(inst[old][:20] + struct.pack("<H", len(i_bags)))
        i_bags += [
            struct.pack("<HH", g + len(i_gens), m + len(i_mods))
            for g, m in (struct.unpack("<HH", b) for b in bags)
        ]
        i_mods += mods
        i_gens += gens
        done += 1

    # Copy sample data, each followed by zero padding, and shift the header offsets.
    new_smpl, s_recs = bytearray(), []
    for old in sorted(sample_map, key=sample_map.get):
        start, end, loop_start, loop_end = struct.unpack_from("<4I", shdr[old], 20)
        rate, pitch, corr, link, kind = struct.unpack_from("<IBbHH", shdr[old], 36)
        base = len(new_smpl) // 2
        new_smpl += smpl[2 * start : 2 * end] + b"\0\0" * SAMPLE_PAD
        shift = base - start
        s_recs.append(
            shdr[old][:20]
            + struct.pack("<4I", base, base + end - start, loop_start + shift, loop_end + shift)
            + struct.pack("<IBbHH", rate, pitch, corr, sample_map.get(link, 0), kind)
        )

    phdr_out = phdr[p][:24] + struct.pack("<H", 0) + phdr[p][26:]
    phdr_out += b"EOP".ljust(20, b"\0") + struct.pack("<HHHIII", 0, 0, len(p_bags), 0, 0, 0)
    pdta_out = list_chunk(
        "pdta",
        chunk("phdr", phdr_out),
        chunk("pbag", b"".join(p_bags) + struct.pack("<HH", len(p_gens), len(p_mods))),
        chunk("pmod", b"".join(p_mods) + b"\0" * MOD),
        chunk("pgen", b"".join(p_gens) + b"\0" * GEN),
        chunk("inst", b"".join(i_recs) + b"EOI".ljust(20, b"\0") + struct.pack("<H", len(i_bags))),
        chunk("ibag", b"".join(i_bags) + struct.pack("<HH", len(i_gens), len(i_mods))),
        chunk("imod", b"".join(i_mods) + b"\0" * MOD),
        chunk("igen", b"".join(i_gens) + b"\0" * GEN),
        chunk("shdr", b"".join(s_recs) + b"EOS".ljust(20, b"\0") + b"\0" * (SHDR - 20)),
    )
    info_chunks = read_chunks(info, 0, len(info))
    info_out = list_chunk(
        "INFO",
        chunk("ifil", info_chunks["ifil"]),
        chunk("isng", zstr("EMU8000")),
        chunk("INAM", zstr(f"{name} (from FluidR3_GM)")),
        chunk("ICOP", zstr("Copyright 2000-2002, 2008 Frank Wen; MIT license")),
        chunk(
            "ICMT",
            zstr(f"Bank {bank} preset {preset} extracted from FluidR3_GM.sf2 by scripts/build_soundfont.py"),
        ),
    )
    sdta_out = list_chunk("sdta", chunk("smpl", bytes(new_smpl)))
    body = b"sfbk" + info_out + sdta_out + pdta_out
    return chunk("RIFF", body), name


def main() -> None:
    """Build the piano soundfont from the Debian FluidR3 GM file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--bank", type=int, default=0)
    parser.add_argument("--preset", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(
            f"{args.source} not found. Install it with `sudo apt-get install fluid-soundfont-gm` "
            "(Debian/Ubuntu) or pass --source path/to/FluidR3_GM.sf2"
        )
    sf2, name = extract(args.source, args.bank, args.preset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(sf2)
    print(f"wrote {args.out} ({len(sf2) / 1e6:.1f} MB): '{name}'")


if __name__ == "__main__":
    main()
