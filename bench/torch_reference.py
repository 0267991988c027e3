"""PyTorch side of the GPU benchmark (bench/run_gpu.sh runs it next to our bench_gpu).

The same work as ours, written from ../shared/docs/advbn-method.md: device-to-device copy
bandwidth; the AdvBN layer forward+backward on [64, 256, 56, 56] in eager mode (fp32, bf16);
one ResNet-50 AdvBN fine-tuning step (224 px, batch 64, K = 6: encoder forward, 6 attack
steps through the tail with adversarial BNs in eval mode, clean + adversarial update) and one
plain tail fine-tuning step, in fp32, TF32 and bf16 autocast: images/s and peak memory.
Prints one JSON object.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

dev = torch.device("cuda")


def median_ms(fn, warm=3, reps=20):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    samples.sort()
    return samples[len(samples) // 2]


def advbn(x, alpha, beta):
    mu = x.mean(dim=(0, 2, 3), keepdim=True)
    return torch.clamp(beta * (x - mu) + alpha * mu, min=0)


class DualBN(nn.Module):
    """AdvProp-style auxiliary BN: a clean and an adversarial BN, both from the same weights."""

    adv = False

    def __init__(self, bn):
        super().__init__()
        self.clean = bn
        self.advbn = nn.BatchNorm2d(bn.num_features).to(bn.weight.device)
        self.advbn.load_state_dict(bn.state_dict())

    def forward(self, x):
        return self.advbn(x) if DualBN.adv else self.clean(x)


def dualize(module):
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, DualBN(child))
        else:
            dualize(child)


class BasicBlock(nn.Module):
    def __init__(self, in_c, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_c != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def small_resnet(depth=8, width=16, classes=10):
    """advbn's `smallResnet` layout (CIFAR-style, depth 6n+2): (encoder = stem + stage 1, tail =
    stages 2, 3 + pool + fc), convs He-initialised with fan-out as ours and torchvision's."""
    n = (depth - 2) // 6
    stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    stages, in_c = [], width
    for i, planes in enumerate([width, 2 * width, 4 * width]):
        blocks = []
        for b in range(n):
            blocks.append(BasicBlock(in_c, planes, 2 if (b == 0 and i > 0) else 1))
            in_c = planes
        stages.append(nn.Sequential(*blocks))
    encoder = nn.Sequential(stem, stages[0])
    tail = nn.Sequential(stages[1], stages[2], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_c, classes))
    for m in [*encoder.modules(), *tail.modules()]:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return encoder, tail


def advbn_loss(tail, h, y, steps=6, step_size=0.2, epsilon=1.1):
    """The method's training loss on encoder features h: K sign-gradient steps on (alpha, beta)
    from 1 with the tail in eval mode on its adversarial BNs (gradients w.r.t. alpha and beta
    only), then CE(tail_clean(h)) + CE(tail_adv(h_adv)) in training mode."""
    alpha = torch.ones(1, h.shape[1], 1, 1, device=h.device, requires_grad=True)
    beta = torch.ones(1, h.shape[1], 1, 1, device=h.device, requires_grad=True)
    tail.eval()
    DualBN.adv = True
    for _ in range(steps):
        loss = F.cross_entropy(tail(advbn(h, alpha, beta)), y)
        ga, gb = torch.autograd.grad(loss, [alpha, beta])
        with torch.no_grad():
            alpha.add_(step_size * ga.sign()).clamp_(1 - epsilon, 1 + epsilon)
            beta.add_(step_size * gb.sign()).clamp_(1 - epsilon, 1 + epsilon)
    h_adv = advbn(h, alpha, beta).detach()
    tail.train()
    DualBN.adv = False
    loss = F.cross_entropy(tail(h), y)
    DualBN.adv = True
    loss = loss + F.cross_entropy(tail(h_adv), y)
    DualBN.adv = False
    return loss


def erm_loss(tail, h, y):
    tail.train()
    return F.cross_entropy(tail(h), y)


def resnet50_split():
    m = torchvision.models.resnet50(num_classes=1000).to(dev)
    encoder = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    tail = nn.Sequential(m.layer2, m.layer3, m.layer4, nn.AdaptiveAvgPool2d(1), nn.Flatten(), m.fc)
    return encoder, tail


def step_fn(method, precision):
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    encoder, tail = resnet50_split()
    if method == "advbn":
        dualize(tail)
    opt = torch.optim.SGD(tail.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    x = torch.rand(64, 3, 224, 224, device=dev)
    y = torch.randint(0, 1000, (64,), device=dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            with torch.no_grad():
                h = encoder(x)
            loss = advbn_loss(tail, h, y) if method == "advbn" else erm_loss(tail, h, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main():
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    big = torch.rand(64 * 256 * 56 * 56, device=dev)
    ms = median_ms(lambda: big.clone())
    out["copy_gb_per_s"] = 2 * big.numel() * 4 / (ms * 1e-3) / 1e9
    for dtype, name in [(torch.float32, "f32"), (torch.bfloat16, "bf16")]:
        x = torch.rand(64, 256, 56, 56, device=dev, dtype=dtype)
        g = torch.rand_like(x) * 2 - 1
        alpha = torch.ones(1, 256, 1, 1, device=dev, requires_grad=True)
        beta = torch.ones(1, 256, 1, 1, device=dev, requires_grad=True)

        def layer():
            (advbn(x, alpha.to(dtype), beta.to(dtype)) * g).sum().backward()

        out[f"advbn_layer_{name}_torch_eager_ms"] = median_ms(layer)
        xr = x.clone().requires_grad_(True)
        weight = torch.ones(256, device=dev, requires_grad=True)
        bias = torch.zeros(256, device=dev, requires_grad=True)

        def bn_layer():
            y = F.relu(F.batch_norm(xr, None, None, weight.to(dtype), bias.to(dtype), training=True))
            (y * g).sum().backward()

        out[f"bn_layer_{name}_torch_ms"] = median_ms(bn_layer)
    for precision in ["fp32", "tf32", "bf16"]:
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        x = torch.rand(64, 128, 28, 28, device=dev, dtype=dtype, requires_grad=True)
        w = (torch.rand(128, 128, 3, 3, device=dev, dtype=dtype) * 0.2 - 0.1).requires_grad_(True)

        def conv():
            F.conv2d(x, w, padding=1).sum().backward()

        ms = median_ms(conv)
        out[f"conv3x3_{precision}_torch_ms"] = ms
        out[f"conv3x3_{precision}_torch_tflops"] = 3 * 2 * 64 * 128 * 28 * 28 * 128 * 9 / (ms * 1e-3) / 1e12
    for method in ["advbn", "erm"]:
        for precision in ["fp32", "tf32", "bf16"]:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            ms = median_ms(step_fn(method, precision), warm=2, reps=5)
            out[f"resnet50_{method}_{precision}_images_per_s"] = 64 / (ms * 1e-3)
            out[f"resnet50_{method}_{precision}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            out[f"resnet50_{method}_{precision}_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
            print(f"{method} {precision}: {64 / (ms * 1e-3):.1f} img/s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
