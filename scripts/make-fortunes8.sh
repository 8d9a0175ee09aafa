#!/usr/bin/env bash
# Builds data/fortunes8.csv, the corpus embedded in src/data/corpus.rs, from
# Debian's `fortunes` package (downloaded, not installed).
#
# Usage: scripts/make-fortunes8.sh [OUT.csv]   (default: data/fortunes8.csv)
#
# The CSV: header `label,text,is_valid`; one row per text, label = the fortune
# file's name, rows in the order of FILES below and file order within each.
# Every text field is quoted (RFC 4180: `"` doubled); labels and is_valid are
# bare. Lines end in `\n`. Each text:
#   - is the lines between two lines holding only `%` (or the file's start
#     and end), joined by `\n`, so its trailing newline is gone;
#   - has every `\n` replaced by one space (tabs, runs of spaces and every
#     other byte are kept: the texts contain backspace (0x08) and bell (0x07)
#     characters, used for overstrike, and a few double-encoded UTF-8
#     sequences, which stay as they are);
#   - is trimmed of ASCII whitespace (space, \t, \n, \v, \f, \r) at both ends,
#     so a poem's first-line indentation goes, inner indentation stays;
#   - is skipped if that leaves it empty. In fortunes 1:1.99.1-7.3 the only
#     empty texts are the ones after a final `%` line at the end of six files
#     (definitions, politics, science, songs-poems, work, men-women).
# Text i of a file (from 0, counting kept texts only) is validation
# (`is_valid` = True) when i % 5 == 4, else training (False).
#
# The loader requires UTF-8. Every text of fortunes 1:1.99.1-7.3 is valid
# UTF-8; if a later package has one that is not, this script stops and says
# which, rather than re-decoding it silently.
#
# Expected with fortunes 1:1.99.1-7.3 (Debian bookworm; deb sha256
# 41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5): 6765 texts, 5414
# training, 1351 validation; sha256 of the CSV
# a7fbea5e3e087b191d59de52d2f796b855264da27039c33f41518688c5e22a92 (printed at the end).
set -euo pipefail

out="$(realpath -m "${1:-data/fortunes8.csv}")"
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

python3 - root/usr/share/games/fortunes "$out" <<'PY'
import sys

FILES = "computers definitions people politics science songs-poems work men-women".split()
src, out = sys.argv[1], sys.argv[2]

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

rows, counts, skipped, bad = [], {}, {}, []
for name in FILES:
    with open(f"{src}/{name}", "rb") as f:
        data = f.read()
    kept = 0
    for raw in texts(data):
        text = raw.replace(b"\n", b" ").strip()  # bytes.strip(): ASCII whitespace only
        if not text:
            skipped[name] = skipped.get(name, 0) + 1
            continue
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append(f"{name} text {kept}: {e}")
        rows.append((name, text, kept % 5 == 4))
        kept += 1
    counts[name] = kept

if bad:
    sys.exit("texts that are not UTF-8 (the loader requires UTF-8; decide how to decode them):\n" + "\n".join(bad))

with open(out, "wb") as f:
    f.write(b"label,text,is_valid\n")
    for name, text, valid in rows:
        quoted = b'"' + text.replace(b'"', b'""') + b'"'
        f.write(name.encode() + b"," + quoted + b"," + (b"True" if valid else b"False") + b"\n")

n_valid = sum(1 for r in rows if r[2])
print(f"texts {len(rows)}, training {len(rows) - n_valid}, validation {n_valid}")
print("per file: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
print("empty texts skipped: " + (", ".join(f"{k} {v}" for k, v in skipped.items()) or "none"))
PY
echo "sha256 $(sha256sum "$out" | cut -d' ' -f1)  $out"
