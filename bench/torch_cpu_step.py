"""PyTorch side of the CPU step benchmark (bench/run_cpu.sh runs it next to our `cpu_step`).

The same four workloads as crates/advbn-core/benches/cpu_step.rs, written from
../shared/docs/advbn-method.md, in eager mode on the CPU:

1. resnet18_train: torchvision ResNet-18 (10 classes), 96 px, batch 32, whole network in
   training mode, cross-entropy, SGD lr 0.01 momentum 0.9 weight decay 1e-4.
2. resnet18_eval: the same model in eval mode, forward only, under torch.no_grad().
3. small_advbn: CIFAR ResNet-20 (depth 20, width 16: 3x3 stem, 3 stages of 3 basic blocks with
   16/32/64 channels, 1x1-conv + BN downsample), 32 px, batch 128, cut after stage 1. The encoder
   (stem + stage 1) runs in eval mode without gradients; every tail BN is a clean/adversarial
   pair; K = 6 sign-gradient steps of 0.2 on alpha, beta (box [-0.1, 2.1]) with the tail in eval
   mode on the adversarial BNs and torch.autograd.grad w.r.t. alpha and beta only; then
   CE(tail_clean(h)) + CE(tail_adv(h_adv)) in training mode and one SGD step (lr 1e-3, momentum
   0.9, weight decay 1e-4).
4. small_erm: the same model and cut, CE(tail_clean(h)) and one SGD step.

Inputs are uniform random images and random labels (never zeros). Threads: torch.set_num_threads
from --threads. Each workload: warm-up steps, then the median of timed steps. Prints one JSON
object: images/s per workload, plus the versions.
"""
import argparse
import json
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# The method's loss (AdvBN layer, attack, clean/adversarial BN pairs) is the GPU reference's.
from torch_reference import advbn_loss, dualize, erm_loss, small_resnet


def median_s(fn, warm, reps, budget_s):
    for _ in range(warm):
        fn()
    samples = []
    started = time.perf_counter()
    while len(samples) < reps and (len(samples) < 3 or time.perf_counter() - started < budget_s):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2], len(samples)


def resnet18_train_step():
    model = torchvision.models.resnet18(num_classes=10).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = torch.rand(32, 3, 96, 96), torch.randint(0, 10, (32,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, 32


def resnet18_eval_step():
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(32, 3, 96, 96)

    def step():
        with torch.no_grad():
            model(x)

    return step, 32


def small_step(method):
    encoder, tail = small_resnet(depth=20)
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    if method == "advbn":
        dualize(tail)
    opt = torch.optim.SGD(tail.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x, y = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def step():
        with torch.no_grad():
            h = encoder(x)
        loss = advbn_loss(tail, h, y) if method == "advbn" else erm_loss(tail, h, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, 128


def conv_flops(module, x_shape):
    """FLOPs (2 per multiply-add) of each conv / linear layer of `module` on input x_shape, in
    call order, with whether it is the first layer to see the input (no input gradient needed
    when the input is not differentiated)."""
    layers = []

    def hook(m, inputs, output):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            layers.append(2 * output.numel() * k)
        elif isinstance(m, nn.Linear):
            layers.append(2 * output.numel() * m.in_features)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module.eval()(torch.zeros(x_shape))
    for h in handles:
        h.remove()
    return layers


def step_flops():
    """Matrix-product FLOPs each workload's step must do (BN, ReLU, pooling and the optimiser
    are memory-bound and left out): forward = F; an input gradient and a weight gradient cost
    what the forward costs, layer by layer."""
    r18 = conv_flops(torchvision.models.resnet18(num_classes=10), (32, 3, 96, 96))
    encoder, tail = small_resnet(depth=20)
    enc = conv_flops(encoder, (128, 3, 32, 32))
    tl = conv_flops(tail, (128, 16, 32, 32))
    fwd_r18, fwd_tail = sum(r18), sum(tl)
    return {
        # forward, weight gradients everywhere, input gradients everywhere but the first conv
        "resnet18_train": fwd_r18 + fwd_r18 + (fwd_r18 - r18[0]),
        "resnet18_eval": fwd_r18,
        # encoder forward; 6 attack steps (tail forward + input gradients, no weight gradients);
        # the clean and the adversarial update (forward + weight gradients + input gradients but
        # the tail's first layer, whose input is the detached features)
        "small_advbn": sum(enc) + 6 * 2 * fwd_tail + 2 * (3 * fwd_tail - tl[0]),
        "small_erm": sum(enc) + 3 * fwd_tail - tl[0],
    }


# The conv layers of the workloads (same list as cpu_step.rs): (name, N, C, H = W, O, k, stride, pad).
CONV_LAYERS = [
    ("r18_stem", 32, 3, 96, 64, 7, 2, 3),
    ("r18_l1", 32, 64, 24, 64, 3, 1, 1),
    ("r18_l2s2", 32, 64, 24, 128, 3, 2, 1),
    ("r18_l2", 32, 128, 12, 128, 3, 1, 1),
    ("r18_l3s2", 32, 128, 12, 256, 3, 2, 1),
    ("r18_l3", 32, 256, 6, 256, 3, 1, 1),
    ("r18_l4s2", 32, 256, 6, 512, 3, 2, 1),
    ("r18_l4", 32, 512, 3, 512, 3, 1, 1),
    ("r18_l4ds", 32, 256, 6, 512, 1, 2, 0),
    ("s20_stem", 128, 3, 32, 16, 3, 1, 1),
    ("s20_l1", 128, 16, 32, 16, 3, 1, 1),
    ("s20_l2", 128, 32, 16, 32, 3, 1, 1),
    ("s20_l3", 128, 64, 8, 64, 3, 1, 1),
    ("s20_l2s2", 128, 16, 32, 32, 3, 2, 1),
    ("s20_l2ds", 128, 16, 32, 32, 1, 2, 0),
    ("s20_l3s2", 128, 32, 16, 64, 3, 2, 1),
]


def conv_layers(args, out):
    """Per layer: forward, and the input / weight gradient passes (each timed with its forward,
    the forward's median subtracted), in ms."""
    for name, n, c, h, o, k, stride, pad in CONV_LAYERS:
        x = torch.rand(n, c, h, h, requires_grad=True)
        w = (torch.rand(o, c, k, k) - 0.5).requires_grad_(True)
        g = torch.rand_like(F.conv2d(x, w, stride=stride, padding=pad))

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, stride=stride, padding=pad)

        def data():
            torch.autograd.grad(F.conv2d(x, w, stride=stride, padding=pad), [x], g)

        def filt():
            torch.autograd.grad(F.conv2d(x, w, stride=stride, padding=pad), [w], g)

        f = median_s(fwd, 5, 15, 10.0)[0] * 1e3
        d = median_s(data, 5, 15, 10.0)[0] * 1e3 - f
        wt = median_s(filt, 5, 15, 10.0)[0] * 1e3 - f
        out[f"conv_{name}_ms"] = [f, d, wt]
        print(f"torch conv {name}: fwd {f:.2f} ms, bwd-data {d:.2f} ms, bwd-filter {wt:.2f} ms", file=sys.stderr)


WORKLOADS = {
    "resnet18_train": resnet18_train_step,
    "resnet18_eval": resnet18_eval_step,
    "small_advbn": lambda: small_step("advbn"),
    "small_erm": lambda: small_step("erm"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--budget", type=float, default=40.0, help="seconds of timed steps per workload (at least 3 steps)")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--gemm", type=int, default=2048, help="size of the square f32 matrix product timed as the ceiling (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    out["step_gflop"] = {name: flops / 1e9 for name, flops in step_flops().items()}
    if args.gemm:
        n = args.gemm
        a, b = torch.rand(n, n), torch.rand(n, n)
        seconds, _ = median_s(lambda: a @ b, 2, 7, 10.0)
        out[f"gemm{n}_gflops"] = 2 * n**3 / seconds / 1e9
        print(f"torch gemm {n}^3: {out[f'gemm{n}_gflops']:.1f} GFLOP/s", file=sys.stderr)
    names = [n for n in args.only.split(",") if n] or list(WORKLOADS)
    if "conv_layers" in names:
        conv_layers(args, out)
        names.remove("conv_layers")
    for name in names:
        step, batch = WORKLOADS[name]()
        seconds, reps = median_s(step, args.warm, args.reps, args.budget)
        out[f"{name}_images_per_s"] = batch / seconds
        out[f"{name}_step_ms"] = seconds * 1e3
        out[f"{name}_reps"] = reps
        print(f"torch {name}: {batch / seconds:.1f} img/s ({seconds * 1e3:.1f} ms/step, median of {reps})", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
