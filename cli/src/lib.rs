//! `bert-edge`: the device command-line tool. Thin: argument parsing and calls into the
//! library. See `bert-edge help`.

// House rule (issue #31): no function over 60 lines (clippy.toml), checked by clippy in CI.
#![warn(clippy::too_many_lines)]

pub mod alloc_count;
mod args;
mod bench;
pub mod encode;
mod info;
mod jsonl;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tasks;
mod tune;

pub use args::{cores, CliError, ModelArgs};
use args::{finish, opt_parse};

use bert_edge::{Error, Task};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const HELP: &str = "\
bert-edge: BERT-base-chinese on small ARM boards (tract)

USAGE:
  bert-edge encode  --model FILE [--seq N] [--tokenizer FILE] [--variant f32|f16|int8] [--hidden-states]
                    [--pooling cls|mean|max|last-token|weighted-mean|mean-sqrt-len|pooler|sentence-embedding]
                    [--normalize | --no-normalize]
                    JSON Lines on stdin: {\"text\": ..., \"text_pair\": ...?, \"prompt_name\": ...?}
                    or {\"input_ids\": [...], \"attention_mask\": [...]?, \"token_type_ids\": [...]?}
                    or {\"inputs_embeds\": [[...hidden floats]...], ...}; exactly one JSON line out per
                    line in (a blank line gets an error), with every output of the graph by name
                    (per-token ones with --hidden-states), \"truncated\", and \"embedding\": the
                    model's own (sentence-transformers files beside the model or one level up:
                    pooling, Normalize, prompts), else mean pooling; flags override. The choice
                    and its reason are printed at start.
  bert-edge classify  --model FILE [--top-k K]             text-classification models
  bert-edge ner       --model FILE [--aggregation simple|none]  token-classification models
  bert-edge fill-mask --model FILE [--top-k K]             masked-LM models (texts with [MASK])
                    JSON Lines {\"text\": ...} in (classify: also \"text_pair\"), answers out, as
                    Hugging Face's pipelines give them (labels from the export's config.json).
  bert-edge info    --model FILE [--seq N] [--variant V]
  bert-edge bench   --model FILE [--seq N] [--batch B] [--variant V] [--reps R] [--warmup W] [--json]
                    [--lengths 4,8,...] (latency per real length on the one plan)
  bert-edge embed-lookup --model IDS.onnx [--seq N] [--tokenizer FILE]
                    text lines in, {\"inputs_embeds\": word_embeddings[ids], ...} lines out
                    (feed them, edited or not, to `encode` on the inputs_embeds model)
  bert-edge compile --model FILE.onnx --seq N [--variant V] [--batch B] [--tokenizer FILE] [--tune] -o FILE.nnef.tar
                    (the archive keeps the tokenizer, labels and sentence-transformers config;
                    with --tune, the kernels measured on this machine, for devices with its CPU)
  bert-edge tune    --model FILE [--seq N] [--batch B]   times every matmul kernel tract offers
                    for each geometry of the plan on this machine, prints the table, caches the
                    fastest (~/.cache/bert-edge/kernels.tsv, or $BERT_EDGE_CACHE_DIR)
  bert-edge serve   --model FILE [--bind 127.0.0.1:8080] [--workers N] [--queue Q] [--pooling P]
                    [--normalize | --no-normalize] [--seq N] [--max-items 32] [--max-text-bytes 16384]
                    [--max-body 1048576] [--header-timeout 5] [--body-timeout 10] [--max-connections 1024]
                    [--batch B] [--batch-wait-ms 2] (dynamic batching: a worker runs up to B queued
                    texts as one call, waiting up to 2 ms for them; default B = 1, no batching)
                    HTTP: POST /embed, POST /v1/embeddings (models with hidden states or a pooler),
                    POST /classify, /ner, /fill-mask (by the model's task), GET /health, GET /metrics

--seq N (any command that loads a model): token rows of N positions (default 128, at most the
model's 512). A plan runs each call at its real length rounded up to --granule G (default 8; int8 plans
always run at the exact length, so padding never enters their quantization ranges),
computing no padding beyond; --fixed-length pins it to exactly N (every call pays for N).
--threads T: tract's matmul threads per encoder (default: the machine's cores; bench: 1;
serve: cores / --workers).
--config FILE (any command that loads an ONNX model): the export's config.json (labels:
id2label); default: config.json beside the model.
--tokenizer FILE (any command that loads a model): the model's tokenizer.json; default:
tokenizer.json beside the model or one directory up, else the one `compile` bundled in the
archive. Never the working directory's; a tokenizer whose vocabulary does not fit the model's
embedding table is refused.
--tune / --kernels cached|rules|NAME (any command that loads a model): the matmul kernels.
cached (default): a measurement made on this CPU (`tune`, `--tune`, or the archive's) where one
exists, tract's rules elsewhere; rules: tract's only; --tune: measure now; NAME: that kernel
wherever it can run. `info`, `bench` and /metrics say which kernel each matmul runs and why.
--f16-compute auto|native|f32 (any command that loads a model): what an f16 plan computes in;
auto = f32 where the CPU has no f16 arithmetic (x86_64, cortex-a72/a53: 2-4x faster, 2x the
weight memory), native f16 where it has (cortex-a76).
FILE is an ONNX export (.onnx) or an archive written by `bert-edge compile` (.nnef.tar plain,
recommended: loads up to ~1.5 s faster; any other name is written gzipped).
Exit status: 0 ok, 1 some input line failed, 2 bad model or usage.
";

#[cfg(feature = "onnx")]
fn compile(m: &ModelArgs, out: &Path) -> Result<(), Error> {
    let opts = m.options();
    let t = std::time::Instant::now();
    eprintln!(
        "bert-edge: translating {} into {}…",
        m.model.display(),
        out.display()
    );
    let info = bert_edge::compile(&m.model, &opts, out)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "bert-edge: wrote {} ({} {} {} batch {} seq {}, {:.1} MB) in {:.1} s",
        out.display(),
        info.task,
        info.flavour,
        info.variant,
        info.batch,
        info.seq,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A usage error: the message, then the help text.
fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{e}\n\n{HELP}"))
}

/// Every command; each one loads a model (`help` aside).
const COMMANDS: [&str; 10] = [
    "encode",
    "tune",
    "classify",
    "ner",
    "fill-mask",
    "info",
    "bench",
    "embed-lookup",
    "compile",
    "serve",
];

fn run() -> Result<ExitCode, CliError> {
    let mut args = pico_args::Arguments::from_env();
    let cmd = args.subcommand().map_err(usage)?;
    match cmd.as_deref() {
        Some("help") | None => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(c) if COMMANDS.contains(&c) => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            command(c, &m, args)
        }
        Some(other) => Err(usage(format!("unknown command {other:?}"))),
    }
}

/// Runs command `cmd` on the model of `m`, with the command's own options from `args`.
fn command(cmd: &str, m: &ModelArgs, mut args: pico_args::Arguments) -> Result<ExitCode, CliError> {
    let done = |r: Result<(), Error>| r.map(|_| ExitCode::SUCCESS).map_err(CliError::from);
    match cmd {
        "encode" => {
            let opts = encode::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            encode::run(m, &opts)
        }
        "classify" | "ner" | "fill-mask" => {
            let task = match cmd {
                "classify" => Task::TextClassification,
                "ner" => Task::TokenClassification,
                _ => Task::FillMask,
            };
            let opts = tasks::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            tasks::command(m, task, &opts)
        }
        "info" => {
            finish(args).map_err(usage)?;
            done(info::info(m))
        }
        "tune" => {
            finish(args).map_err(usage)?;
            done(tune::tune(m))
        }
        "bench" => {
            let opts = bench::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            done(bench::run(m, &opts))
        }
        #[cfg(feature = "onnx")]
        "embed-lookup" => {
            finish(args).map_err(usage)?;
            encode::lookup(m)
        }
        #[cfg(feature = "onnx")]
        "compile" => {
            let out: PathBuf = args
                .opt_value_from_str("-o")
                .map_err(usage)?
                .ok_or_else(|| usage("-o FILE is required"))?;
            finish(args).map_err(usage)?;
            done(compile(m, &out))
        }
        #[cfg(feature = "serve")]
        "serve" => {
            let opts = serve::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            serve::run(m, &opts)
        }
        other => Err(usage(format!(
            "command {other:?} is not in this build (built without its cargo feature)"
        ))),
    }
}

/// The `bert-edge` command line: parses the process's arguments, runs the command, and
/// returns its exit status (0 ok, 1 some input line failed, 2 bad model or usage).
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bert-edge: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}
