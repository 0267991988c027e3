"""Table of advbn's reproduce results against the PyTorch twin's (bench/torch_digits_lodo.py):
per method and held-out domain, mean +- std over seeds of the held-out accuracy, the difference,
and whether it is within the seed spread (|diff| <= the larger std, or <= 2 points with one seed).
Usage: python3 bench/compare_digits_twin.py OURS/results.json torch.json"""
import json
import statistics
import sys


def stat(values):
    mean = statistics.fmean(values)
    return mean, (statistics.pstdev(values) if len(values) > 1 else 0.0)


def main():
    ours = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    held = ours["protocol"]["heldOut"]
    methods = ["baseline"] + ours["config"]["methods"]
    print(f"ours: {ours['config']['wallSeconds']} s wall; torch {torch['torch']} ({torch['threads']} threads): {torch['wallSeconds']:.0f} s wall\n")
    print("| model | held out | ours % | torch % | diff | within spread |")
    print("|---|---|--:|--:|--:|:-:|")
    agree = total = 0
    for m in methods:
        if m not in ours["methods"]:
            continue
        for d in held:
            o = ours["methods"][m]["targets"][d]
            t_values = [p["models"][m]["target"] for p in torch["pairs"] if p["heldOut"] == d and m in p["models"]]
            if not t_values:
                continue
            t_mean, t_std = stat(t_values)
            diff = o["mean"] - t_mean
            spread = max(o["std"], t_std) if len(t_values) > 1 else 0.02
            ok = abs(diff) <= spread
            agree += ok
            total += 1
            print(f"| {m} | {d} | {100 * o['mean']:.1f} ± {100 * o['std']:.1f} | {100 * t_mean:.1f} ± {100 * t_std:.1f} | {100 * diff:+.1f} | {'yes' if ok else '**no**'} |")
    print(f"\n{agree} of {total} (model, held-out domain) cells agree within the seed spread.")
    print("\n| model | ours train s (mean per pair) | torch train s (mean per pair) |")
    print("|---|--:|--:|")
    for m in methods:
        if m in ours["methods"]:
            t = [p["models"][m]["trainSeconds"] for p in torch["pairs"] if m in p["models"]]
            print(f"| {m} | {ours['methods'][m]['trainSeconds']['mean']:.1f} | {statistics.fmean(t):.1f} |")


if __name__ == "__main__":
    main()
