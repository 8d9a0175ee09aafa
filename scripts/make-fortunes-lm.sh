#!/usr/bin/env bash
# Builds data/fortunes-lm-extra.csv, the part of the `fortunes-lm` language-
# model corpus (src/data/lm_corpus.rs) that data/fortunes8.csv does not hold,
# from Debian's `fortunes` package (downloaded, not installed).
#
# Usage: scripts/make-fortunes-lm.sh [OUT.csv] [FORTUNES8.csv]
#        (defaults: data/fortunes-lm-extra.csv, data/fortunes8.csv)
#
# `fortunes-lm` is every text of the package's 40 fortune files minus every
# text equal to a validation text of fortunes8, so that pretraining never sees
# a text the classifier is validated on. The 8 files of fortunes8 are already
# in the repository (data/fortunes8.csv), so this script writes only the texts
# of the 32 OTHER files; the loader composes the corpus as these texts
# followed by the fortunes8 training texts (those equal to no validation text).
#
# The fortune files are the regular files of usr/share/games/fortunes/ not
# named `*.dat` (strfile indexes) or `*.u8` (symlinks to the files), taken in
# order of their names' bytes, minus the 8 of fortunes8 (computers
# definitions people politics science songs-poems work men-women); the script
# stops unless that leaves 32 (the count in 1:1.99.1-7.3).
#
# Each file is split into texts exactly like scripts/make-fortunes8.sh (see
# there): the lines between two `%` lines, joined, every `\n` replaced by a
# space, trimmed of ASCII whitespace, skipped if empty. Then a text is dropped
#   - if it is not valid UTF-8 (the loader requires UTF-8; counted by file);
#   - if it is byte-equal to a validation text (`is_valid` True) of
#     FORTUNES8.csv, read with python's csv module.
#
# The CSV: header `file,text`; one row per kept text, `file` = the fortune
# file's name (bare), rows in file-name order and file order within; every
# text field quoted (RFC 4180: `"` doubled), as in fortunes8.csv. Lines end
# in `\n`.
#
# Expected with fortunes 1:1.99.1-7.3 (Debian bookworm; deb sha256
# 41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5) and
# data/fortunes8.csv of sha256
# a7fbea5e3e087b191d59de52d2f796b855264da27039c33f41518688c5e22a92:
# 32 files, 7631 non-empty texts, none dropped as not UTF-8, 7 dropped as
# equal to a fortunes8 validation text (cookie 5, education 1, sports 1),
# 7624 written (about 207k words, 1282101 bytes); sha256 of the CSV
# e68e42bbc1e924a4ccbd74419e604227b29e23429335983e4ec96bf56a311b50
# (printed at the end).
set -euo pipefail

out="$(realpath -m "${1:-data/fortunes-lm-extra.csv}")"
f8="$(realpath -e "${2:-data/fortunes8.csv}")"
echo "fortunes8: sha256 $(sha256sum "$f8" | cut -d' ' -f1)  $f8"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download fortunes >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get download fortunes >/dev/null
fi
deb="$(ls fortunes_*.deb)"
echo "package: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version), deb sha256 $(sha256sum "$deb" | cut -d' ' -f1)"
dpkg-deb -x "$deb" root/

python3 - root/usr/share/games/fortunes "$f8" "$out" <<'PY'
import csv, os, sys

FORTUNES8 = "computers definitions people politics science songs-poems work men-women".split()
src, f8, out = sys.argv[1], sys.argv[2], sys.argv[3]

def texts(data):
    """The texts of a fortune file: runs of lines between lines holding only `%`."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":  # the file's final newline ends its last line
        lines.pop()
    cur = []
    for line in lines:
        if line == b"%":
            yield b"\n".join(cur)
            cur = []
        else:
            cur.append(line)
    yield b"\n".join(cur)

with open(f8, newline="", encoding="utf-8") as f:
    valid = {r["text"].encode("utf-8") for r in csv.DictReader(f) if r["is_valid"] == "True"}

names = sorted(
    (n for n in os.listdir(src)
     if not n.endswith((".dat", ".u8"))
     and not os.path.islink(f"{src}/{n}")
     and os.path.isfile(f"{src}/{n}")),
    key=os.fsencode,
)
missing = [n for n in FORTUNES8 if n not in names]
if missing:
    sys.exit(f"fortunes8 files missing from the package: {' '.join(missing)}")
names = [n for n in names if n not in FORTUNES8]
if len(names) != 32:
    sys.exit(f"expected 32 fortune files besides fortunes8's, found {len(names)}: {' '.join(names)}")

rows, counts, split, bad, dup = [], {}, 0, {}, {}
for name in names:
    with open(f"{src}/{name}", "rb") as f:
        data = f.read()
    kept = 0
    for raw in texts(data):
        text = raw.replace(b"\n", b" ").strip()  # bytes.strip(): ASCII whitespace only
        if not text:
            continue
        split += 1
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            bad[name] = bad.get(name, 0) + 1
            continue
        if text in valid:
            dup[name] = dup.get(name, 0) + 1
            continue
        rows.append((name, text))
        kept += 1
    counts[name] = kept

with open(out, "wb") as f:
    f.write(b"file,text\n")
    for name, text in rows:
        f.write(name.encode() + b',"' + text.replace(b'"', b'""') + b'"\n')

words = sum(len(t.split()) for _, t in rows)
print(f"files {len(names)}, texts {split}, not UTF-8 {sum(bad.values())}, "
      f"equal to a fortunes8 validation text {sum(dup.values())}, written {len(rows)} "
      f"(~{words} words)")
print("per file: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
print("not UTF-8: " + (", ".join(f"{k} {v}" for k, v in bad.items()) or "none"))
print("validation duplicates: " + (", ".join(f"{k} {v}" for k, v in dup.items()) or "none"))
PY
echo "sha256 $(sha256sum "$out" | cut -d' ' -f1)  $out  ($(stat -c %s "$out") bytes)"
