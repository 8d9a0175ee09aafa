#!/usr/bin/env python3
"""The default shoestring classifier in PyTorch, timed the way
`shoestring bench` times its training step, on the very same batches.

    shoestring bench --export-batches /tmp/batches.json
    python3 bench/torch_reference.py /tmp/batches.json --device cpu --threads 2
    python3 bench/torch_reference.py /tmp/batches.json --device cuda   # deterministic and default modes

The model is the one `shoestring train` builds by default: an embedding, a
variational (per row and feature) dropout on it, a one-layer LSTM, fastai's
concat pooling (last real step, max and mean over the real steps), and a
head of BatchNorm1d, Dropout, Linear, ReLU, BatchNorm1d, Dropout, Linear;
cross-entropy; Adam. Sizes, dropouts, learning rate, token ids and batches
all come from the export. Batches are padded to their longest text and run
through `nn.LSTM` as one padded tensor (what a plain PyTorch loop does);
the pooling masks the padding out.

Timing: one warm-up pass over the K batches, one more (as our calibration
call), then the median over REPS passes, like `shoestring bench`'s clock
(`--quick`: K = 24, 5 passes; otherwise K = 96, 11). Real tokens/s counts
the texts' tokens; padded positions/s counts rows x longest row.

Installing torch takes about 3 GB; this script is run by hand and by the GPU
bundle, never by CI.
"""

import argparse
import json
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("batches", help="the file `shoestring bench --export-batches` wrote")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--quick", action="store_true", help="K = 24 steps per pass, 5 passes")
    p.add_argument(
        "--modes",
        default=None,
        help="cuda: comma-separated `deterministic,default` (both by default); cpu: `default`",
    )
    p.add_argument("--json", help="also write the rows here")
    return p.parse_args()


def build(torch, nn, ex):
    emb, hidden, classes = ex["emb"], ex["hidden"], ex["classes"]
    if len(hidden) != 1:
        sys.exit("torch_reference.py: the export's model has several LSTM layers; only one is built here")
    hid = hidden[0]

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(ex["vocab"], emb)
            self.input_p = ex["input_p"]
            self.lstm = nn.LSTM(emb, hid, batch_first=True)
            widths = [3 * hid] + ex["head_hidden"] + [classes]
            layers = []
            for k in range(len(widths) - 1):
                layers += [nn.BatchNorm1d(widths[k]), nn.Dropout(ex["head_dropouts"][k]), nn.Linear(widths[k], widths[k + 1])]
                if k < len(widths) - 2:
                    layers.append(nn.ReLU())
            self.head = nn.Sequential(*layers)

        def forward(self, ids, lengths):
            x = self.embedding(ids)  # [B, T, E]
            if self.training and self.input_p > 0:
                # Variational dropout: one mask per row and feature, for every step.
                keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device).bernoulli_(1 - self.input_p)
                x = x * keep / (1 - self.input_p)
            h, _ = self.lstm(x)  # [B, T, H], padding after each text
            t = torch.arange(h.shape[1], device=h.device)[None, :]
            real = (t < lengths[:, None])[:, :, None]  # [B, T, 1]
            last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]
            mx = h.masked_fill(~real, float("-inf")).max(dim=1).values
            mean = (h * real).sum(dim=1) / lengths[:, None].to(h.dtype)
            return self.head(torch.cat([last, mx, mean], dim=1))

    return Classifier()


def padded(torch, ex, batch, device):
    texts = [ex["texts"][i] for i in batch]
    longest = max(len(t) for t in texts)
    ids = torch.ones(len(texts), longest, dtype=torch.long)  # 1: a pad id; masked out
    for r, t in enumerate(texts):
        ids[r, : len(t)] = torch.tensor(t)
    lengths = torch.tensor([len(t) for t in texts])
    labels = torch.tensor([ex["labels"][i] for i in batch])
    return ids.to(device), lengths.to(device), labels.to(device), sum(len(t) for t in texts), len(texts) * longest


def measure(torch, nn, ex, plan, device, quick):
    k = 24 if quick else 96
    reps = 5 if quick else 11
    plan = plan[:k]
    torch.manual_seed(42)
    model = build(torch, nn, ex).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=ex["lr"])
    loss_fn = nn.CrossEntropyLoss()
    batches = [padded(torch, ex, b, device) for b in plan]
    real = sum(b[3] for b in batches)
    pad = sum(b[4] for b in batches)
    model.train()

    def one_pass():
        for ids, lengths, labels, _, _ in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(ids, lengths), labels)
            loss.backward()
            opt.step()
        return loss

    def timed():
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            one_pass()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t = time.perf_counter()
        one_pass()
        return time.perf_counter() - t

    first = one_pass().item()
    timed()
    samples = sorted(timed() for _ in range(reps))
    s = statistics.median(samples)
    return {
        "steps": len(batches),
        "median_ms": s * 1e3,
        "real_tokens_per_s": real / s,
        "padded_positions_per_s": pad / s,
        "padding_fraction": 1 - real / pad,
        "last_loss": first,
    }


def main():
    a = parse_args()
    import torch
    import torch.nn as nn

    with open(a.batches) as f:
        ex = json.load(f)
    if ex.get("format") != "shoestring-bench-batches-v1":
        sys.exit(f"{a.batches}: not a `shoestring bench --export-batches` file")
    if a.device == "cuda" and not torch.cuda.is_available():
        print("skipped: torch reference on cuda (torch.cuda.is_available() is False)")
        return
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
        modes = (a.modes or "default").split(",")
        machine = f"cpu, {torch.get_num_threads()} threads"
    else:
        modes = (a.modes or "deterministic,default").split(",")
        machine = torch.cuda.get_device_name(0)
    rows = []
    for mode in modes:
        det = mode == "deterministic"
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.deterministic = det
        torch.backends.cudnn.benchmark = not det
        if det and a.device == "cuda":
            import os

            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        for name in ["sortish", "random"]:
            r = measure(torch, nn, ex, ex[name], a.device, a.quick)
            r.update({"device": a.device, "mode": mode, "batches": name})
            rows.append(r)
            print(
                f"torch {torch.__version__} {a.device} {mode:<13} {name:<7} batches: "
                f"{r['real_tokens_per_s'] / 1e3:7.1f}k real tok/s, "
                f"{r['padded_positions_per_s'] / 1e3:7.1f}k padded positions/s "
                f"({100 * r['padding_fraction']:.0f}% padding), {r['steps']} steps in {r['median_ms']:.0f} ms",
                flush=True,
            )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
