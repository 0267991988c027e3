"""PyTorch twin of `advbn reproduce`'s digits protocol (leave-one-domain-out), written from
../shared/docs/advbn-method.md and the settings in src/reproduce/presets.ts, trained and tested on
the image folders that `advbn digits export` writes. No code of ours is used: images are read
from the PNG files.

Layout it reads (bench/run_digits_twin.sh makes it):
    ROOT/seed<s>/<domain>/train/<class>/*.png   training digits of seed s (--split train --seed s)
    ROOT/seed0/<domain>/test/<class>/*.png      test digits (--split test --seed 0)

For each held-out domain h and seed s (as reproduce):
  baseline  CIFAR-style ResNet (depth 8, width 16), whole network, ERM, AdamW lr 3e-3 wd 1e-4,
            cosine per step, batch 32, 6 epochs, on the train folders of every domain but h
  methods   from that baseline: the tail after stage 1 (encoder frozen, eval mode), SGD lr 0.02
            momentum 0.9 wd 1e-4, cosine per step, batch 64, 1 epoch:
              erm, advbn (K 6, step 0.2, eps 1.1, dual BNs), mixstyle (p 0.5, Beta(0.1, 0.1),
              random partners, on the encoder's output), dsu (p 0.5), advbn_mixstyle /
              advbn_dsu (the style perturbation first; the clean branch trains on the perturbed
              features and AdvBN's attack starts from them)
  figures   accuracy on h's test folder (adversarial BNs for AdvBN models, as the paper), and
            on the source domains' test folders (in-domain)
advbn_augmix is not in the twin (it would need a second AugMix implementation).

Usage: python3 bench/torch_digits_lodo.py ROOT --held-out a,b --seeds 2 --out FILE.json [--threads 2] [--baseline-lr 3e-3]
"""
import argparse
import copy
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import DualBN, advbn_loss, dualize, small_resnet  # noqa: E402  (the AdvBN reference, our ResNet layout)

DOMAINS = ["mnist", "mnist_m", "inverted", "colorized", "sketch", "low_light"]
METHODS = ["erm", "advbn", "mixstyle", "dsu", "advbn_mixstyle", "advbn_dsu"]
BASELINE = dict(epochs=6, lr=3e-3, weight_decay=1e-4, batch=32)
FINE_TUNE = dict(epochs=1, lr=0.02, momentum=0.9, weight_decay=1e-4, batch=64, steps=6, step_size=0.2, epsilon=1.1)
INSTANCE_EPS = 1e-6


def load_folder(path):
    """[N, 3, 28, 28] float in [0, 1] and labels from <path>/<class>/*.png (sorted)."""
    images, labels = [], []
    for cls in sorted(os.listdir(path), key=int):
        for name in sorted(os.listdir(os.path.join(path, cls))):
            with Image.open(os.path.join(path, cls, name)) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(int(cls))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return x, torch.tensor(labels)


def instance_stats(x):
    mu = x.mean(dim=(2, 3), keepdim=True)
    sig = (x.var(dim=(2, 3), keepdim=True) + INSTANCE_EPS).sqrt()
    return mu, sig


def mixstyle(x, p=0.5, alpha=0.1):
    """MixStyle (reference: KaiyangZhou/mixstyle-release), random partners, statistics detached."""
    if random.random() > p:
        return x
    b = x.size(0)
    mu, sig = instance_stats(x)
    mu, sig = mu.detach(), sig.detach()
    lmda = torch.distributions.Beta(alpha, alpha).sample((b, 1, 1, 1))
    perm = torch.randperm(b)
    mu_mix = mu * lmda + mu[perm] * (1 - lmda)
    sig_mix = sig * lmda + sig[perm] * (1 - lmda)
    return (x - mu) / sig * sig_mix + mu_mix


def dsu(x, p=0.5):
    """DSU (reference: lixiaotong97/DSU): statistics resampled by their spread over the batch."""
    if random.random() > p:
        return x
    mu, sig = instance_stats(x)
    sqrtvar_mu = (mu.var(dim=0, keepdim=True) + INSTANCE_EPS).sqrt()
    sqrtvar_sig = (sig.var(dim=0, keepdim=True) + INSTANCE_EPS).sqrt()
    beta = mu + torch.randn_like(mu) * sqrtvar_mu
    gamma = sig + torch.randn_like(sig) * sqrtvar_sig
    return (x - mu) / sig * gamma + beta


def cosine(optimizer, total_steps):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))


def batches(n, batch, generator):
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch] for i in range(0, n, batch)]


def train_baseline(encoder, tail, x, y, seed):
    model = nn.Sequential(encoder, tail).train()
    opt = torch.optim.AdamW(model.parameters(), lr=BASELINE["lr"], weight_decay=BASELINE["weight_decay"])
    steps = BASELINE["epochs"] * math.ceil(len(x) / BASELINE["batch"])
    sched = cosine(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(BASELINE["epochs"]):
        for idx in batches(len(x), BASELINE["batch"], g):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def fine_tune(encoder, tail, x, y, method, seed):
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    adversarial = method.startswith("advbn")
    if adversarial:
        dualize(tail)
    style = {"mixstyle": mixstyle, "dsu": dsu, "advbn_mixstyle": mixstyle, "advbn_dsu": dsu}.get(method)
    opt = torch.optim.SGD(tail.parameters(), lr=FINE_TUNE["lr"], momentum=FINE_TUNE["momentum"], weight_decay=FINE_TUNE["weight_decay"])
    steps = FINE_TUNE["epochs"] * math.ceil(len(x) / FINE_TUNE["batch"])
    sched = cosine(opt, steps)
    g = torch.Generator().manual_seed(seed + 1000)
    for _ in range(FINE_TUNE["epochs"]):
        for idx in batches(len(x), FINE_TUNE["batch"], g):
            with torch.no_grad():
                h = encoder(x[idx])
            if style is not None:
                h = style(h)
            if adversarial:
                loss = advbn_loss(tail, h, y[idx], FINE_TUNE["steps"], FINE_TUNE["step_size"], FINE_TUNE["epsilon"])
            else:
                tail.train()
                loss = F.cross_entropy(tail(h), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return adversarial


@torch.no_grad()
def accuracy(encoder, tail, x, y, adv_bn):
    encoder.eval()
    tail.eval()
    DualBN.adv = adv_bn
    correct = 0
    for i in range(0, len(x), 500):
        correct += (tail(encoder(x[i:i + 500])).argmax(1) == y[i:i + 500]).sum().item()
    DualBN.adv = False
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--held-out", default=",".join(DOMAINS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-lr", type=float, default=BASELINE["lr"], help="AdamW lr of the baselines (reproduce's digits.baseline.lr)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    BASELINE["lr"] = args.baseline_lr
    held_out = args.held_out.split(",")
    methods = args.methods.split(",")
    started = time.perf_counter()
    test = {d: load_folder(os.path.join(args.root, "seed0", d, "test")) for d in DOMAINS}
    pairs = []
    for h in held_out:
        for seed in range(args.seeds):
            pair_started = time.perf_counter()
            train = [load_folder(os.path.join(args.root, f"seed{seed}", d, "train")) for d in DOMAINS if d != h]
            x = torch.cat([t[0] for t in train])
            y = torch.cat([t[1] for t in train])
            random.seed(seed)
            torch.manual_seed(seed)
            encoder, tail = small_resnet()
            t0 = time.perf_counter()
            train_baseline(encoder, tail, x, y, seed)
            record = {"heldOut": h, "seed": seed, "models": {}}

            def figures(enc, tl, adv, seconds):
                sources = [d for d in DOMAINS if d != h]
                in_domain = sum(accuracy(enc, tl, *test[d], adv_bn=False) for d in sources) / len(sources)
                return {"target": accuracy(enc, tl, *test[h], adv_bn=adv), "targetCleanBn": accuracy(enc, tl, *test[h], adv_bn=False),
                        "inDomain": in_domain, "trainSeconds": seconds}

            record["models"]["baseline"] = figures(encoder, tail, False, time.perf_counter() - t0)
            state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(tail.state_dict()))
            for method in methods:
                enc, tl = small_resnet()
                enc.load_state_dict(state[0])
                tl.load_state_dict(state[1])
                random.seed(seed)
                torch.manual_seed(seed)
                t0 = time.perf_counter()
                adv = fine_tune(enc, tl, x, y, method, seed)
                record["models"][method] = figures(enc, tl, adv, time.perf_counter() - t0)
            record["wallSeconds"] = time.perf_counter() - pair_started
            pairs.append(record)
            print(f"held out {h} seed {seed}: " + ", ".join(f"{m} {100 * r['target']:.1f}" for m, r in record["models"].items())
                  + f" (in-domain baseline {100 * record['models']['baseline']['inDomain']:.1f}; {record['wallSeconds']:.0f} s)", flush=True)
    out = {"torch": torch.__version__, "threads": args.threads, "wallSeconds": time.perf_counter() - started, "pairs": pairs,
           "settings": {"baseline": BASELINE, "fineTune": FINE_TUNE, "methods": methods}}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wall {out['wallSeconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
