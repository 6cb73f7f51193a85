#!/usr/bin/env python3
"""One plan for every length vs plans pinned to each length vs onnxruntime on unpadded tokens.

    bench/lengths.py                                   # base f32 + int8, lengths 4..512, N = 512
    bench/lengths.py --variants int8 --lengths 8,32 --n 128 --threads 1,2

For each variant and thread count, three engines run the same texts (bert-edge bench's
deterministic `[CLS] ids... [SEP]` of real length L), interleaved call by call with the order
rotating every round, so all see the same machine state:
  any    ONE `bert-edge bench --stdin --seq N` process (a plan of any length up to N; each call
         runs at L rounded up to the granule, 8), asked `run L`;
  fixed  per L a `bert-edge bench --stdin --seq L --fixed-length` process (pinned to exactly L);
  ort    onnxruntime (1 session, all graph optimisations) fed the UNPADDED L tokens.
Also the short-text case of issue #16: a 6-token text on an any-length N = 128 plan vs a plan
pinned to 8 (`--short`, on by default).

Prints per L the medians and the medians of the paired ratios any/fixed, any/ort, fixed/ort;
writes bench/out/lengths-<stamp>.{json,md}. The CPU and tract's ISA and kernels head every table.
A measurement program: it asserts nothing.
"""
import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (same directory: engines, inputs, venv re-exec)


def inputs_at(flavour, length, hidden, vocab):
    """`bert-edge bench`'s inputs (cli/src/bench/mod.rs) at real length L, unpadded: what onnxruntime gets."""
    return compare.make_inputs(flavour, length, hidden, vocab)


def median_ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def reps_for(length, base):
    return max(7, int(base * (32 / max(length, 32)) ** 0.5))


def measure(args, variant, threads):
    model = os.path.join(args.models, f"bert_ids_{variant}.onnx")
    cfg = json.load(open(os.path.join(args.models, "manifest.json")))["config"] \
        if os.path.exists(os.path.join(args.models, "manifest.json")) else {}
    hidden = cfg.get("hidden_size", 768)
    vocab = cfg.get("vocab_size", 21128)
    any_plan = compare.Tract(args.bin, model, args.n, variant, threads)
    ort = compare.Ort(model, threads)
    head = {"cpu": any_plan.ready.get("cpu"), "isa": any_plan.ready.get("isa"),
            "kernels_any": any_plan.ready.get("kernels"), "load_s_any": any_plan.ready.get("load_s"),
            "peak_rss_mb_any": any_plan.ready.get("peak_rss_mb")}
    rows = []
    for length in args.lengths:
        fixed = compare.Tract(args.bin, model, length, variant, threads, ["--fixed-length"])
        ort.set_inputs(inputs_at("ids", length, hidden, vocab))
        t = {"any": [], "fixed": [], "ort": []}
        engines = [("any", lambda: any_plan.run(length)), ("fixed", fixed.run), ("ort", ort.run)]
        for _ in range(args.warmup):
            for _, f in engines:
                f()
        reps = args.reps or reps_for(length, 40)
        gap = compare.gap_s(args, threads)
        for r in range(reps):
            order = engines[r % 3:] + engines[:r % 3]
            for name, f in order:
                if gap:
                    time.sleep(gap)
                t[name].append(f())
        row = {"length": length, "reps": reps, "gap_ms": gap * 1e3,
               "kernels_fixed": fixed.ready.get("kernels"),
               "peak_rss_mb_fixed": fixed.ready.get("peak_rss_mb"),
               "load_s_fixed": fixed.ready.get("load_s"),
               "median_ms": {k: statistics.median(v) for k, v in t.items()},
               "any_over_fixed": median_ratio(t["any"], t["fixed"]),
               "any_over_ort": median_ratio(t["any"], t["ort"]),
               "fixed_over_ort": median_ratio(t["fixed"], t["ort"]),
               "samples": t}
        fixed.close()
        rows.append(row)
        print(f"  {variant} T{threads} L {length:>4}: any {row['median_ms']['any']:8.3f} ms  "
              f"fixed {row['median_ms']['fixed']:8.3f}  ort {row['median_ms']['ort']:8.3f}  "
              f"any/fixed {row['any_over_fixed']:.3f}  any/ort {row['any_over_ort']:.3f}  "
              f"fixed/ort {row['fixed_over_ort']:.3f}", flush=True)
    any_plan.close()
    out = {"variant": variant, "threads": threads, "n": args.n, **head, "rows": rows}
    if args.short:
        out["short"] = short_text(args, model, variant, threads)
    return out


def short_text(args, model, variant, threads):
    """A 6-token text: any-length plan of N = 128 vs a plan pinned to 8 (2 padding tokens)."""
    a = compare.Tract(args.bin, model, 128, variant, threads)
    f = compare.Tract(args.bin, model, 8, variant, threads, ["--fixed-length"])
    ta, tf = [], []
    for _ in range(args.warmup):
        a.run(6), f.run(6)
    gap = compare.gap_s(args, threads)
    for r in range(60):
        if gap:
            time.sleep(gap)
        if r % 2:
            ta.append(a.run(6)), tf.append(f.run(6))
        else:
            tf.append(f.run(6)), ta.append(a.run(6))
    a.close(), f.close()
    res = {"any128_ms": statistics.median(ta), "fixed8_ms": statistics.median(tf),
           "ratio": median_ratio(ta, tf)}
    print(f"  {variant} T{threads} 6 tokens: any N=128 {res['any128_ms']:.3f} ms, fixed 8 "
          f"{res['fixed8_ms']:.3f} ms, ratio {res['ratio']:.3f}", flush=True)
    return res


def markdown(data):
    lines = [f"CPU `{data['cpu']}`; tract ISA `{data['isa']}`; onnxruntime {data['ort_version']}; "
             f"bert-edge {data['git']}; `{data['command']}`", ""]
    for m in data["runs"]:
        lines += [f"**{m['variant']}, {m['threads']} thread(s), one plan N = {m['n']}** "
                  f"(kernels {', '.join(m['kernels_any'] or [])}; load {m['load_s_any']:.2f} s, "
                  f"peak RSS {m['peak_rss_mb_any']:.0f} MB)", "",
                  "| L | any-length ms | fixed-L ms | onnxruntime ms | any / fixed | any / ort | fixed / ort |",
                  "|---|---|---|---|---|---|---|"]
        for r in m["rows"]:
            ms = r["median_ms"]
            lines.append(f"| {r['length']} | {ms['any']:.3f} | {ms['fixed']:.3f} | {ms['ort']:.3f} | "
                         f"{r['any_over_fixed']:.3f} | {r['any_over_ort']:.3f} | {r['fixed_over_ort']:.3f} |")
        if "short" in m:
            s = m["short"]
            lines.append(f"\n6-token text: any-length N = 128 {s['any128_ms']:.3f} ms vs pinned to 8 "
                         f"{s['fixed8_ms']:.3f} ms: ratio **{s['ratio']:.3f}**")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=os.path.join(compare.ROOT, "models", "base"))
    ap.add_argument("--variants", default="f32,int8")
    ap.add_argument("--lengths", default="4,8,16,32,64,128,256,512")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-short", dest="short", action="store_false")
    ap.add_argument("--gap-ms", type=float, default=None,
                    help="idle ms before each timed call (default 0 at 1 thread, 30 above)")
    ap.add_argument("--bin", default=os.path.join(compare.ROOT, "target", "release", "bert-edge"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    try:
        import onnxruntime
    except ImportError:  # the venv models/generate made (as compare.py does)
        py = os.environ.get("BERT_EDGE_VENV", os.path.join(compare.ROOT, "models", ".venv"))
        py = os.path.join(py, "bin", "python")
        if os.path.isfile(py) and not os.environ.get("BERT_EDGE_LENGTHS_REEXEC"):
            os.environ["BERT_EDGE_LENGTHS_REEXEC"] = "1"
            os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
        sys.exit("lengths.py: needs numpy + onnxruntime (run models/generate, or set BERT_EDGE_VENV)")
    args.lengths = compare.parse_list(args.lengths, int)
    data = {"cpu": compare.cpu_name(), "ort_version": onnxruntime.__version__, "git": compare.git_rev(),
            "command": "bench/lengths.py " + " ".join(sys.argv[1:]),
            "date": _dt.datetime.now().isoformat(timespec="seconds"), "runs": []}
    for variant in compare.parse_list(args.variants):
        for threads in compare.parse_list(args.threads, int):
            data["runs"].append(measure(args, variant, threads))
    data["isa"] = data["runs"][0]["isa"] if data["runs"] else None
    stem = args.out or os.path.join(HERE, "out", "lengths-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(data, f)
    md = markdown(data)
    with open(stem + ".md", "w") as f:
        f.write(md + "\n")
    print(md)
    print("wrote", stem + ".{json,md}")


if __name__ == "__main__":
    main()
