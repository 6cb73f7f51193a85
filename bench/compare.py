#!/usr/bin/env python3
"""bert-edge (tract) vs onnxruntime on the same ONNX files, interleaved call by call.

    bench/compare.py                                  # default matrix, see --help
    bench/compare.py --variants f32,int8 --flavours ids --seqs 32,128 --threads 1
    bench/compare.py --from-json bench/out/compare-XXXX.json   # re-render table + chart

For every (variant, flavour, seq, threads) it keeps onnxruntime in this process
(intra_op_num_threads=T, inter_op_num_threads=1, sequential execution, all graph
optimisations) and drives ONE long-lived `bert-edge bench --stdin --threads T` process that
has loaded the plan once. After warm-up both engines alternate call by call, the order
flipping every pair (A B, B A, A B, ...), so both see the same machine state; the statistic
that matters is the *paired ratio*: the median over pairs of bert-edge ms / onnxruntime ms.
Both engines get the same input tensors (this script regenerates bert-edge bench's
deterministic inputs) and a sanity line compares their outputs (cosine, max |diff|).

Timing: bert-edge's number is measured inside its process around `Encoder::run_*` (copy in,
tract, copy out); onnxruntime's around `InferenceSession.run` (includes numpy output
allocation). Pipe round-trips are not timed.

Writes bench/out/compare-<stamp>.json (raw samples, load averages, versions), .md (table) and
.svg (ratio chart), and prints the table. A measurement program: it asserts nothing.

Python: needs onnxruntime + numpy. If they are missing it re-executes itself with
$BERT_EDGE_VENV/bin/python, else models/.venv/bin/python (what models/generate creates).
"""
import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _reexec_in_venv():
    candidates = []
    if os.environ.get("BERT_EDGE_VENV"):
        candidates.append(os.path.join(os.environ["BERT_EDGE_VENV"], "bin", "python"))
    candidates.append(os.path.join(ROOT, "models", ".venv", "bin", "python"))
    if not os.environ.get("BERT_EDGE_COMPARE_REEXEC"):
        os.environ["BERT_EDGE_COMPARE_REEXEC"] = "1"  # once: no loop if the venv lacks them too
        for py in candidates:
            if os.path.isfile(py):
                os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("compare.py: needs numpy + onnxruntime: set BERT_EDGE_VENV or run models/generate "
             "(creates models/.venv)")


def _need_ort():
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        _reexec_in_venv()


# ---------------------------------------------------------------------------------------------
# inputs: the same generator as cli/src/bench/mod.rs (bench_inputs)

def make_inputs(flavour, seq, hidden, vocab, batch=1):
    import numpy as np
    n = batch * seq
    i = np.arange(n, dtype=np.int64)
    ids = 672 + (i * 7919) % (vocab - 700)
    ids = ids.reshape(batch, seq)
    ids[:, 0] = 101
    ids[:, seq - 1] = 102
    mask = np.ones((batch, seq), dtype=np.int64)
    types = np.zeros((batch, seq), dtype=np.int64)
    if flavour == "ids":
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    k = np.arange(batch * seq * hidden, dtype=np.int64)
    emb = ((k % 97).astype(np.float32) - np.float32(48.0)) * np.float32(1e-3)
    return {"inputs_embeds": emb.reshape(batch, seq, hidden), "attention_mask": mask,
            "token_type_ids": types}


# ---------------------------------------------------------------------------------------------
# statistics

def pct(xs, p):
    """Nearest-rank percentile on a sorted copy (same rule as cli/src/bench/)."""
    s = sorted(xs)
    return s[int(round((len(s) - 1) * p))]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


def cos(a, b):
    import numpy as np
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


# ---------------------------------------------------------------------------------------------
# engines

class Tract:
    def __init__(self, binary, model, seq, variant, threads, extra=()):
        cmd = [binary, "bench", "--model", model, "--seq", str(seq), "--variant", variant,
               "--threads", str(threads), "--stdin", *extra]
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        line = self.p.stdout.readline()
        if not line:
            err = self.p.stderr.read()
            self.p.wait()
            raise RuntimeError(f"bert-edge exited {self.p.returncode}: {err.strip()[-600:]}")
        self.ready = json.loads(line)

    def _ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("bert-edge died: " + self.p.stderr.read().strip()[-600:])
        return line

    def run(self, length=None):
        """One call (at real length `length`, default the plan's N); its latency in ms."""
        return float(self._ask("run" if length is None else f"run {length}"))

    def dump(self):
        """Every output of the graph by name, in the graph's order."""
        import numpy as np
        j = json.loads(self._ask("dump"))
        return {k: np.array(v, dtype=np.float32) for k, v in j["outputs"].items()}

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()
            self.p.wait()


class Ort:
    def __init__(self, model, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        t = time.perf_counter()
        self.s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.load_s = time.perf_counter() - t
        self.names = [i.name for i in self.s.get_inputs()]
        self.output_names = [o.name for o in self.s.get_outputs()]

    def set_inputs(self, feeds):
        self.feeds = {k: v for k, v in feeds.items() if k in self.names}

    def run(self):
        t = time.perf_counter()
        out = self.s.run(None, self.feeds)
        ms = (time.perf_counter() - t) * 1e3
        self.last = out
        return ms


# ---------------------------------------------------------------------------------------------

def parse_list(s, cast=str):
    return [cast(x) for x in s.split(",") if x]


def gap_s(args, threads):
    """Idle seconds before each timed call (`--gap-ms`; default 0 at 1 thread, 30 ms above):
    every engine's pool spins for a while after a call, and at 2 threads on 2 cores a pool
    still spinning takes a core from the next engine's call (onnxruntime's made the bert-edge
    call after it ~1.6x slower, 2026-12-06). lengths.py uses it too."""
    return (args.gap_ms if args.gap_ms is not None else (0.0 if threads == 1 else 30.0)) / 1e3


def reps_for(args, seq):
    if args.reps:
        return args.reps
    return {8: 60, 32: 40}.get(seq, 15 if seq >= 128 else 30)


def model_path(args, variant, flavour):
    """models/<size>/bert_<flavour>_<variant>.onnx, or with --task-dir DIR (a
    `models/generate --task` output) DIR/torch_<variant>.onnx (ids only)."""
    if args.task_dir:
        return os.path.join(args.task_dir, f"torch_{variant}.onnx")
    return os.path.join(args.models, f"bert_{flavour}_{variant}.onnx")


def measure(args, variant, flavour, seq, threads, cfg_json):
    model = model_path(args, variant, flavour)
    rec = {"variant": variant, "flavour": flavour, "seq": seq, "threads": threads,
           "model": os.path.relpath(model, ROOT), "loadavg_before": loadavg()}
    if not os.path.isfile(model):
        rec["skipped"] = f"no {model}"
        return rec
    try:
        tr = Tract(args.bin, model, seq, variant, threads,
                   ["--fixed-length"] if args.fixed_length else [])
    except RuntimeError as e:
        rec["skipped"] = str(e).splitlines()[-1] if str(e) else "bert-edge failed"
        return rec
    try:
        ort_ = Ort(model, threads)
        r = tr.ready
        feeds = make_inputs(flavour, seq, r["hidden"], cfg_json.get("vocab_size", 21128),
                            r["batch"])
        ort_.set_inputs(feeds)
        rec["cpu"], rec["isa"], rec["kernels"] = r.get("cpu"), r.get("isa"), r.get("kernels")
        rec["tract_load_s"] = r["load_s"]
        rec["tract_first_run_s"] = r["first_run_s"]
        rec["ort_session_s"] = ort_.load_s
        # sanity: same inputs, compare outputs
        if not args.no_check:
            import numpy as np
            got = tr.dump()
            ort_.run()
            want = dict(zip(ort_.output_names, ort_.last))
            # The first output both have (last_hidden_state, or a head's logits), and the pooler.
            first = next(k for k in got if k in want)
            rec["check"] = {"output": first, "cos_hidden": cos(got[first], want[first]),
                            "max_abs_hidden": float(np.max(np.abs(got[first] - want[first].ravel())))}
            if "pooler_output" in got and "pooler_output" in want:
                rec["check"]["cos_pooled"] = cos(got["pooler_output"], want["pooler_output"])
        for _ in range(args.warmup):
            tr.run()
            ort_.run()
        n = reps_for(args, seq)
        gap = gap_s(args, threads)
        rec["gap_ms"] = gap * 1e3

        def settle():
            if gap:
                time.sleep(gap)

        ts, os_, t_start = [], [], time.perf_counter()
        for i in range(n):
            if i % 2 == 0:
                settle()
                a = tr.run()
                settle()
                b = ort_.run()
            else:
                settle()
                b = ort_.run()
                settle()
                a = tr.run()
            ts.append(a)
            os_.append(b)
            if (args.max_seconds and time.perf_counter() - t_start > args.max_seconds
                    and i + 1 >= args.min_reps):
                break
        rec["tract_ms"] = ts
        rec["ort_ms"] = os_
        rec["ratios"] = [a / b for a, b in zip(ts, os_)]
        rec["wall_s"] = time.perf_counter() - t_start
    except RuntimeError as e:  # bert-edge died mid-config: keep going with the others
        rec["skipped"] = str(e).splitlines()[-1] if str(e) else "bert-edge died"
    finally:
        tr.close()
    rec["loadavg_after"] = loadavg()
    return rec


def summarize(rec):
    if "ratios" not in rec:
        return None
    t, o, r = rec["tract_ms"], rec["ort_ms"], rec["ratios"]
    return {"n": len(r), "t_med": statistics.median(t), "t_p90": pct(t, 0.9),
            "o_med": statistics.median(o), "o_p90": pct(o, 0.9),
            "r_med": statistics.median(r), "r_p10": pct(r, 0.1), "r_p90": pct(r, 0.9)}


def markdown(data):
    m = data["meta"]
    lines = [
        f"# bert-edge vs onnxruntime ({m['when']})",
        "",
        f"- machine: {m['cpu']}, {m['nproc']} cores; load avg before {' '.join(m['loadavg_before'] or [])}"
        f", after {' '.join(m.get('loadavg_after') or [])}",
        f"- bert-edge {m['bin']} (git {m['git']}); onnxruntime {m['ort_version']}",
        *[f"- tract ISA: {isa}" for isa in sorted({r["isa"] for r in data["results"] if r.get("isa")})],
        *[f"- tract kernels, {v}: {', '.join(k)}" for v, k in
          sorted({(r["variant"], tuple(r["kernels"])) for r in data["results"] if r.get("kernels")})],
        f"- command: `{m['command']}`",
        "- ratio = median over interleaved pairs of bert-edge ms / onnxruntime ms (p10-p90 of the pair"
        " ratios in brackets); < 1 means bert-edge is faster",
        "- at more than 1 thread each timed call follows an idle gap (`--gap-ms`, default 30 ms) so"
        " that neither engine's spinning thread pool takes a core from the other's call",
        "",
        "| variant | flavour | seq | thr | n | bert-edge med / p90 ms | ORT med / p90 ms | ratio [p10-p90] | cos 1st output | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rec in data["results"]:
        key = f"| {rec['variant']} | {rec['flavour']} | {rec['seq']} | {rec['threads']} "
        s = summarize(rec)
        if s is None:
            why = str(rec.get("skipped", "?"))
            why = why if len(why) <= 90 else why[:87] + "..."
            lines.append(key + f"| - | skipped: {why} | | | | |")
            continue
        c = rec.get("check", {}).get("cos_hidden")
        la = f"{(rec.get('loadavg_before') or ['?'])[0]}→{(rec.get('loadavg_after') or ['?'])[0]}"
        lines.append(
            key + f"| {s['n']} | {s['t_med']:.2f} / {s['t_p90']:.2f} | {s['o_med']:.2f} / {s['o_p90']:.2f} "
            f"| **{s['r_med']:.2f}** [{s['r_p10']:.2f}-{s['r_p90']:.2f}] "
            f"| {'-' if c is None else f'{c:.5f}'} | {la} |")
    return "\n".join(lines) + "\n"


def svg(data):
    rows = [(r, summarize(r)) for r in data["results"]]
    rows = [(r, s) for r, s in rows if s]
    if not rows:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>"
    lab_w, plot_w, row_h, top = 230, 520, 18, 40
    hi = max(2.0, max(s["r_p90"] for _, s in rows) * 1.05)
    hi = math.ceil(hi * 2) / 2
    x = lambda v: lab_w + plot_w * min(v, hi) / hi  # noqa: E731
    h = top + row_h * len(rows) + 40
    colors = {"f32": "#4477aa", "f16": "#228833", "int8": "#cc6677"}
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{lab_w + plot_w + 60}' height='{h}' "
           "font-family='sans-serif' font-size='11'>",
           f"<text x='10' y='16' font-size='13'>bert-edge / onnxruntime latency "
           "(median of paired ratios; whisker p10-p90; &lt;1 = bert-edge faster)</text>"]
    t = 0.0
    while t <= hi + 1e-9:
        out.append(f"<line x1='{x(t):.1f}' y1='{top - 6}' x2='{x(t):.1f}' y2='{top + row_h * len(rows)}' "
                   f"stroke='{'#000' if abs(t - 1) < 1e-9 else '#ddd'}'/>")
        out.append(f"<text x='{x(t):.1f}' y='{top + row_h * len(rows) + 14}' text-anchor='middle'>{t:g}</text>")
        t += 0.5
    for k, (r, s) in enumerate(rows):
        y = top + k * row_h
        label = f"{r['variant']} {r['flavour']} seq {r['seq']} thr {r['threads']}"
        out.append(f"<text x='{lab_w - 6}' y='{y + 12}' text-anchor='end'>{label}</text>")
        out.append(f"<rect x='{lab_w}' y='{y + 3}' width='{x(s['r_med']) - lab_w:.1f}' height='{row_h - 6}' "
                   f"fill='{colors.get(r['variant'], '#888')}'/>")
        out.append(f"<line x1='{x(s['r_p10']):.1f}' y1='{y + row_h / 2}' x2='{x(s['r_p90']):.1f}' "
                   f"y2='{y + row_h / 2}' stroke='#000'/>")
        out.append(f"<text x='{x(s['r_med']) + 4:.1f}' y='{y + 12}'>{s['r_med']:.2f}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_outputs(data, stem):
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(data, f, indent=1)
    md = markdown(data)
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".svg", "w") as f:
        f.write(svg(data))
    return md


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(ROOT, "models", "base"),
                    help="directory with bert_{ids,embeds}_{f32,f16,int8}.onnx (default models/base)")
    ap.add_argument("--task-dir", default=None,
                    help="a `models/generate --task` output: time DIR/torch_<variant>.onnx (ids)")
    ap.add_argument("--variants", default="f32,f16,int8")
    ap.add_argument("--flavours", default="ids,embeds")
    ap.add_argument("--seqs", default="8,32,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=0,
                    help="timed pairs per config (default: 60 at seq 8, 40 at 32, 15 at 128)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed pairs after the first call")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="stop a config's timed loop after this many seconds (0: never)")
    ap.add_argument("--min-reps", type=int, default=7, help="...but not before this many pairs")
    ap.add_argument("--gap-ms", type=float, default=None,
                    help="idle time before every timed call (default: 0 at 1 thread, 30 above): "
                         "both engines' thread pools spin-wait after a call, and at 2 threads on "
                         "2 cores a spinning pool steals a core from the other engine's next call")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "bert-edge"))
    ap.add_argument("--out", default=None, help="output stem (default bench/out/compare-<stamp>)")
    ap.add_argument("--no-check", action="store_true", help="skip the output agreement check")
    ap.add_argument("--fixed-length", action="store_true",
                    help="bert-edge plans pinned to seq (default: a plan of any length, fed seq tokens)")
    ap.add_argument("--from-json", nargs="+", default=None,
                    help="re-render table + chart from saved run(s); several are merged (use --out)")
    args = ap.parse_args()

    if args.from_json:
        runs = []
        for path in args.from_json:
            with open(path) as f:
                runs.append(json.load(f))
        data = runs[0]
        if len(runs) > 1:  # merge: results in the given order, load before first / after last
            data["meta"]["command"] = "; ".join(r["meta"]["command"] for r in runs)
            data["meta"]["loadavg_after"] = runs[-1]["meta"].get("loadavg_after")
            data["results"] = [rec for r in runs for rec in r["results"]]
        stem = args.out or os.path.splitext(args.from_json[0])[0]
        print(write_outputs(data, stem), end="")
        return 0

    _need_ort()
    import onnxruntime
    if not os.path.isfile(args.bin):
        sys.exit(f"compare.py: no {args.bin}: cargo build --release --bin bert-edge (or --bin PATH)")
    cfg_path = os.path.join(args.task_dir or args.models, "config.json")
    cfg_json = json.load(open(cfg_path)) if os.path.isfile(cfg_path) else {}
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = args.out or os.path.join(HERE, "out", f"compare-{stamp}")
    data = {"meta": {
        "when": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "cpu": cpu_name(), "nproc": os.cpu_count(), "bin": os.path.relpath(args.bin, ROOT),
        "git": git_rev(), "ort_version": onnxruntime.__version__,
        "python": platform.python_version(), "loadavg_before": loadavg(),
    }, "results": []}
    matrix = [(v, f, s, t) for t in parse_list(args.threads, int) for s in parse_list(args.seqs, int)
              for v in parse_list(args.variants) for f in parse_list(args.flavours)]
    t0 = time.perf_counter()
    for k, (v, f, s, t) in enumerate(matrix):
        print(f"[{k + 1}/{len(matrix)}] {v} {f} seq {s} threads {t} "
              f"(load {' '.join(loadavg() or [])}, {time.perf_counter() - t0:.0f} s so far)",
              file=sys.stderr, flush=True)
        rec = measure(args, v, f, s, t, cfg_json)
        sm = summarize(rec)
        if sm:
            c = rec.get("check", {})
            print(f"      bert-edge {sm['t_med']:.2f} ms, ORT {sm['o_med']:.2f} ms, ratio {sm['r_med']:.2f} "
                  f"(n {sm['n']}; cos hidden {c.get('cos_hidden', float('nan')):.5f}, "
                  f"pooled {c.get('cos_pooled', float('nan')):.5f})", file=sys.stderr, flush=True)
        else:
            print(f"      skipped: {rec.get('skipped')}", file=sys.stderr, flush=True)
        data["results"].append(rec)
        data["meta"]["loadavg_after"] = loadavg()
        data["meta"]["wall_s"] = time.perf_counter() - t0
        write_outputs(data, stem)  # partial results survive an interrupted run
    md = write_outputs(data, stem)
    print(md, end="")
    print(f"\nwrote {stem}.json, .md, .svg", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
