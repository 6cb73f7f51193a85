//! `bert-edge`: the device command-line tool. Thin: argument parsing and calls into the
//! library. See `bert-edge help`.

pub mod alloc_count;
mod bench;
pub mod encode;
mod jsonl;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tasks;

use bert_edge::{Error, Flavour, LoadOptions, Task, Variant};
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
  bert-edge compile --model FILE.onnx --seq N [--variant V] [--batch B] [--tokenizer FILE] -o FILE.nnef.tar
                    (the archive keeps the tokenizer, labels and sentence-transformers config)
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
--f16-compute auto|native|f32 (any command that loads a model): what an f16 plan computes in;
auto = f32 where the CPU has no f16 arithmetic (x86_64, cortex-a72/a53: 2-4x faster, 2x the
weight memory), native f16 where it has (cortex-a76).
FILE is an ONNX export (.onnx) or an archive written by `bert-edge compile` (.nnef.tar plain,
recommended: loads up to ~1.5 s faster; any other name is written gzipped).
Exit status: 0 ok, 1 some input line failed, 2 bad model or usage.
";

/// A command's failure: what to print and the exit status (1: reading or writing a stream
/// failed; 2: a bad model, bad usage or a failure to start).
#[derive(Debug)]
pub struct CliError {
    pub status: u8,
    pub message: String,
}

impl CliError {
    /// Exit status 2: usage, model or start-up.
    pub fn usage(message: impl ToString) -> Self {
        CliError {
            status: 2,
            message: message.to_string(),
        }
    }

    /// Exit status 1: the input or output stream failed.
    pub fn io(message: impl ToString) -> Self {
        CliError {
            status: 1,
            message: message.to_string(),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::usage(e)
    }
}

/// Options shared by the subcommands that load a model.
#[derive(Debug, Clone)]
pub struct ModelArgs {
    pub model: PathBuf,
    pub seq: Option<usize>,
    pub fixed_length: bool,
    pub granule: Option<usize>,
    /// `None`: the command's default (the machine's cores; bench: 1; serve: cores ÷ workers).
    pub threads: Option<usize>,
    /// Rows per call (`compile`, `bench`, `serve`; the other commands take batch-1 plans).
    pub batch: Option<usize>,
    pub variant: Option<Variant>,
    pub flavour: Option<Flavour>,
    pub f16_compute: bert_edge::F16Compute,
    pub config: Option<PathBuf>,
    /// `--tokenizer FILE`: the model's tokenizer.json (default: beside the model or one
    /// directory up, else the one an archive carries).
    pub tokenizer: Option<PathBuf>,
}

impl ModelArgs {
    fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let model: PathBuf = args
            .opt_value_from_str("--model")
            .map_err(|e| e.to_string())?
            .ok_or("--model FILE is required")?;
        let seq = args
            .opt_value_from_str("--seq")
            .map_err(|e| e.to_string())?;
        let variant = opt_parse(args, "--variant")?;
        let flavour = opt_parse(args, "--flavour")?;
        let f16_compute = opt_parse(args, "--f16-compute")?.unwrap_or_default();
        let config = args
            .opt_value_from_str("--config")
            .map_err(|e| e.to_string())?;
        let tokenizer = args
            .opt_value_from_str("--tokenizer")
            .map_err(|e| e.to_string())?;
        let granule = args
            .opt_value_from_str("--granule")
            .map_err(|e| e.to_string())?;
        let threads: Option<usize> = args
            .opt_value_from_str("--threads")
            .map_err(|e| e.to_string())?;
        let batch: Option<usize> = args
            .opt_value_from_str("--batch")
            .map_err(|e| e.to_string())?;
        if threads == Some(0) || granule == Some(0) || batch == Some(0) {
            return Err("--threads, --granule and --batch must be at least 1".into());
        }
        Ok(ModelArgs {
            model,
            seq,
            fixed_length: args.contains("--fixed-length"),
            granule,
            threads,
            batch,
            variant,
            flavour,
            f16_compute,
            config,
            tokenizer,
        })
    }

    /// The load options these arguments ask for.
    pub fn options(&self) -> LoadOptions {
        let mut o = LoadOptions::new()
            .f16_compute(self.f16_compute)
            .threads(self.threads.unwrap_or_else(cores));
        if let Some(s) = self.seq {
            o = o.seq(s);
        }
        if self.fixed_length {
            o = o.fixed_length(true);
        }
        if let Some(g) = self.granule {
            o = o.granule(g);
        }
        if let Some(b) = self.batch {
            o = o.batch(b);
        }
        if let Some(v) = self.variant {
            o = o.variant(v);
        }
        if let Some(f) = self.flavour {
            o = o.flavour(f);
        }
        if let Some(c) = &self.config {
            o = o.config(c);
        }
        if let Some(t) = &self.tokenizer {
            o = o.tokenizer(t);
        }
        o
    }

    /// Loads the plan, with progress on stderr.
    pub fn load(&self) -> Result<bert_edge::Plan, Error> {
        let t = std::time::Instant::now();
        eprintln!(
            "bert-edge: loading {} (translate + optimize)…",
            self.model.display()
        );
        let plan = bert_edge::Plan::load(&self.model, &self.options())?;
        let i = plan.info();
        let widened = i.variant == Variant::F16 && !plan.computes_f16();
        eprintln!(
            "bert-edge: plan ready in {:.2} s: {} {} {}{} batch {} {} {} hidden {}",
            t.elapsed().as_secs_f64(),
            i.task,
            i.flavour,
            i.variant,
            if widened { " (computed in f32)" } else { "" },
            i.batch,
            if i.fixed_length {
                "seq"
            } else {
                "any length up to"
            },
            i.seq,
            i.hidden
        );
        Ok(plan)
    }
}

/// The machine's cores (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn opt_parse<T: std::str::FromStr<Err = Error>>(
    args: &mut pico_args::Arguments,
    key: &'static str,
) -> Result<Option<T>, String> {
    let raw: Option<String> = args.opt_value_from_str(key).map_err(|e| e.to_string())?;
    raw.map(|s| s.parse::<T>().map_err(|e| format!("{key}: {e}")))
        .transpose()
}

fn finish(args: pico_args::Arguments) -> Result<(), String> {
    let rest = args.finish();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected arguments: {rest:?}"))
    }
}

fn info(m: &ModelArgs) -> Result<(), Error> {
    let plan = m.load()?;
    let i = plan.info();
    println!("file:        {}", m.model.display());
    println!("flavour:     {}", i.flavour);
    println!("variant:     {}", i.variant);
    println!("batch, seq:  {}, {}", i.batch, i.seq);
    println!(
        "length:      {}",
        if i.fixed_length {
            format!("fixed: every call computes {} positions", i.seq)
        } else {
            format!(
                "any up to {}: a call runs at its longest real row (e.g. 6 tokens -> {})",
                i.seq,
                plan.run_length(6)
            )
        }
    );
    println!("hidden:      {}", i.hidden);
    match i.vocab_size {
        Some(v) => println!("vocab:       {v}"),
        None => println!("vocab:       (embeds graph: no word-embedding table)"),
    }
    println!("type vocab:  {}", i.type_vocab_size);
    println!("task:        {}", i.task);
    if !i.labels.is_empty() {
        println!(
            "labels:      {}{}",
            i.labels.join(", "),
            if i.multi_label {
                " (multi-label: sigmoid scores)"
            } else {
                ""
            }
        );
    }
    let model = bert_edge::unstable::model(&plan);
    for (ix, o) in model.inputs.iter().enumerate() {
        let f = model.input_fact(ix).map_err(Error::Engine)?;
        println!("input  {ix}:    {} {f:?}", model.node(o.node).name);
    }
    for (ix, o) in i.outputs.iter().enumerate() {
        let role = o.role.map_or("(no role)".to_string(), |r| r.to_string());
        println!("output {ix}:    {} {:?} {role}", o.name, o.shape);
    }
    println!("parameters:  {}", plan.parameter_count());
    println!(
        "tokenizer:   {}",
        plan.tokenizer()
            .map_or("(none: give --tokenizer FILE)", |t| t.0)
    );
    match bert_edge::heads::Embedding::resolve(i, None, None) {
        Ok(Some(e)) => println!("embedding:   {}", e.why),
        Ok(None) => {}
        Err(e) => println!("embedding:   {e}"),
    }
    if let Some(st) = &i.sentence {
        for (name, text) in &st.prompts {
            let default = st.default_prompt_name.as_deref() == Some(name.as_str());
            println!(
                "prompt:      {name}{}: {text:?}",
                if default { " (default)" } else { "" }
            );
        }
    }
    println!("optimized plan ops:");
    for (op, n) in plan.op_histogram() {
        println!("  {n:>5}  {op}");
    }
    Ok(())
}

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

fn run() -> Result<ExitCode, CliError> {
    let mut args = pico_args::Arguments::from_env();
    let usage = |e: String| CliError::usage(format!("{e}\n\n{HELP}"));
    let cmd = args.subcommand().map_err(|e| usage(e.to_string()))?;
    let model_err = CliError::from;
    match cmd.as_deref() {
        Some("encode") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            let opts = encode::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            encode::run(&m, &opts)
        }
        Some(cmd @ ("classify" | "ner" | "fill-mask")) => {
            let task = match cmd {
                "classify" => Task::TextClassification,
                "ner" => Task::TokenClassification,
                _ => Task::FillMask,
            };
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            let opts = tasks::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            tasks::command(&m, task, &opts)
        }
        Some("info") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            info(&m).map_err(model_err)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("bench") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            let opts = bench::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            bench::run(&m, &opts).map_err(model_err)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "onnx")]
        Some("embed-lookup") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            encode::lookup(&m)
        }
        #[cfg(feature = "onnx")]
        Some("compile") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            let out: PathBuf = args
                .opt_value_from_str("-o")
                .map_err(|e| usage(e.to_string()))?
                .ok_or_else(|| usage("-o FILE is required".into()))?;
            finish(args).map_err(usage)?;
            compile(&m, &out).map_err(model_err)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "serve")]
        Some("serve") => {
            let m = ModelArgs::parse(&mut args).map_err(usage)?;
            let opts = serve::Options::parse(&mut args).map_err(usage)?;
            finish(args).map_err(usage)?;
            serve::run(&m, &opts)
        }
        Some("help") | None => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(usage(format!("unknown command {other:?}"))),
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
