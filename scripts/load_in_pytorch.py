#!/usr/bin/env python3
"""Load a shoestring classifier into plain torch.nn modules and use it.

    python3 scripts/load_in_pytorch.py RUN_DIR "some text" ...   # top classes per text
    python3 scripts/load_in_pytorch.py RUN_DIR --eval data/fortunes8.csv
    python3 scripts/load_in_pytorch.py RUN_DIR --compare          # vs `shoestring predict`

RUN_DIR is a finished `shoestring train` run: its `model.safetensors` holds the
parameters under PyTorch's own names and layouts, and `vocab.json` the tokens,
classes and maximum length. Nothing here is shoestring code: the model below is
`nn.Embedding`, one single-layer `nn.LSTM` per layer (fastai's layout), and
`nn.BatchNorm1d` + `nn.Linear` blocks, and `load_state_dict(strict=True)` checks
that every tensor in the file has a home and every parameter a value.

Needs `torch` (and `numpy`); `safetensors` is used when installed, otherwise the
file is read with the standard library (an 8-byte header length, a JSON header,
raw little-endian f32). Not run in CI (torch is a large download).

`--compare` runs `shoestring predict` (from PATH, or `target/release/shoestring`)
on the validation texts of fortunes8 and reports the largest difference between
its probabilities and these, and how many top classes agree.
"""

import argparse
import csv
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def read_safetensors(path):
    """Tensors and metadata of a safetensors file (f32 only)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except ImportError:
        pass
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {info['dtype']}, expected F32")
        lo, hi = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[lo:hi]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"])
    return out, meta


class Block(nn.Module):
    """fastai's head block: BatchNorm1d -> Dropout -> Linear."""

    def __init__(self, n_in, n_out, p):
        super().__init__()
        self.bn = nn.BatchNorm1d(n_in, eps=1e-5, momentum=0.1)
        self.drop = nn.Dropout(p)
        self.linear = nn.Linear(n_in, n_out)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embedding = nn.Embedding(cfg["vocab"], cfg["emb"])
        dirs = 2 if cfg["bidirectional"] else 1
        sizes = [cfg["emb"]] + [h * dirs for h in cfg["hidden"]]
        self.lstm = nn.ModuleList(
            nn.LSTM(sizes[i], h, batch_first=True, bidirectional=cfg["bidirectional"])
            for i, h in enumerate(cfg["hidden"])
        )


class TextClassifier(nn.Module):
    """The shoestring classifier: embedding -> LSTM layers -> concat pooling
    [last, max, mean] over the real steps -> head blocks with ReLU between."""

    def __init__(self, cfg):
        super().__init__()
        self.encoder = Encoder(cfg)
        dirs = 2 if cfg["bidirectional"] else 1
        widths = [3 * cfg["hidden"][-1] * dirs] + cfg["head_hidden"] + [cfg["classes"]]
        self.head = nn.ModuleList(
            Block(widths[k], widths[k + 1], cfg["head_dropouts"][k]) for k in range(len(widths) - 1)
        )

    def forward(self, ids):
        """Logits of one text (a list of token ids), shape [classes]: texts run
        one at a time, so no padding or masking is needed."""
        x = self.encoder.embedding(torch.tensor([ids]))
        for lstm in self.encoder.lstm:
            x, _ = lstm(x)
        h = x[0]
        z = torch.cat([h[-1], h.max(dim=0).values, h.mean(dim=0)])[None]
        for k, block in enumerate(self.head):
            z = block.linear(block.drop(block.bn(z)))
            if k < len(self.head) - 1:
                z = torch.relu(z)
        return z[0]


def load(run_dir):
    run = Path(run_dir)
    tensors, meta = read_safetensors(run / "model.safetensors")
    ours = json.loads(meta["shoestring"])
    cfg = json.loads(ours["config"])
    model = TextClassifier(cfg)
    state = dict(tensors)
    # PyTorch counts BatchNorm batches; shoestring has no such buffer.
    for k, block in enumerate(model.head):
        state[f"head.{k}.bn.num_batches_tracked"] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    model.eval()
    vocab = json.loads((run / "vocab.json").read_text(encoding="utf-8"))
    return model, vocab


def encode(text, vocab, stoi):
    """shoestring's `words-v1` tokenizer: xxbos, then lowercase words and
    punctuation, unknown words as xxunk, at most max_len ids in all."""
    ids = [2] + [stoi.get(t, 1) for t in TOKEN.findall(text.lower())]
    return ids[: vocab["max_len"]]


def probabilities(model, vocab, texts):
    stoi = {t: i for i, t in enumerate(vocab["tokens"])}
    with torch.no_grad():
        return [torch.softmax(model(encode(t, vocab, stoi)).double(), dim=0) for t in texts]


def shoestring_binary():
    found = shutil.which("shoestring")
    if found:
        return found
    local = Path(__file__).resolve().parent.parent / "target" / "release" / "shoestring"
    if local.exists():
        return str(local)
    raise SystemExit("--compare needs `shoestring` on PATH or target/release/shoestring")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("texts", nargs="*")
    ap.add_argument("--eval", metavar="CSV", help="accuracy on the is_valid rows of a label,text,is_valid CSV")
    ap.add_argument("--compare", action="store_true", help="compare with `shoestring predict` on fortunes8's validation texts")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    model, vocab = load(args.run_dir)
    classes = vocab["classes"]

    if args.eval or args.compare:
        path = args.eval or Path(__file__).resolve().parent.parent / "data" / "fortunes8.csv"
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("is_valid", "True").lower() in ("true", "1")]
        texts = [r["text"] for r in rows]
        probs = probabilities(model, vocab, texts)
        right = sum(int(p.argmax()) == classes.index(r["label"]) for p, r in zip(probs, rows))
        print(f"pytorch: {len(rows)} validation texts, accuracy {right / len(rows):.4f}")
        if args.compare:
            out = subprocess.run(
                [shoestring_binary(), "predict", "--model", args.run_dir, "--json"],
                input="\n".join(texts) + "\n",
                capture_output=True, text=True, check=True,
            ).stdout.splitlines()
            worst, agree = 0.0, 0
            for line, p in zip(out, probs):
                ours = json.loads(line)["probabilities"]
                worst = max(worst, max(abs(ours[c] - float(p[i])) for i, c in enumerate(classes)))
                agree += max(classes, key=lambda c: ours[c]) == classes[int(p.argmax())]
            print(f"vs shoestring predict: top class agrees on {agree}/{len(texts)} texts; "
                  f"largest probability difference {worst:.2e}")
        return

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    for text, p in zip(texts, probabilities(model, vocab, texts)):
        top = sorted(range(len(classes)), key=lambda i: (-float(p[i]), i))[: args.top]
        print("  ".join(f"{classes[i]} {float(p[i]):.3f}" for i in top) + "\t" + text)


if __name__ == "__main__":
    main()
