//! The command line's shared pieces: the error a command ends with ([`CliError`]), the model
//! options every loading command takes ([`ModelArgs`]) and small parsing helpers.

use bert_edge::tuning::Tune;
use bert_edge::{Error, Flavour, LoadOptions, Variant};
use std::path::PathBuf;

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
    /// `--tune` (measure now) or `--kernels cached|rules|NAME` (default cached).
    pub tune: Tune,
}

impl ModelArgs {
    pub(crate) fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
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
        let tune = tune(args)?;
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
            tune,
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
        o.tune(self.tune.clone())
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

pub(crate) fn opt_parse<T: std::str::FromStr<Err = Error>>(
    args: &mut pico_args::Arguments,
    key: &'static str,
) -> Result<Option<T>, String> {
    let raw: Option<String> = args.opt_value_from_str(key).map_err(|e| e.to_string())?;
    raw.map(|s| s.parse::<T>().map_err(|e| format!("{key}: {e}")))
        .transpose()
}

pub(crate) fn finish(args: pico_args::Arguments) -> Result<(), String> {
    let rest = args.finish();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected arguments: {rest:?}"))
    }
}

/// `--tune` (measure the kernels now) or `--kernels cached|rules|NAME` (a name forces that
/// kernel wherever it can run).
fn tune(args: &mut pico_args::Arguments) -> Result<Tune, String> {
    let measure = args.contains("--tune");
    let kernels: Option<String> = args
        .opt_value_from_str("--kernels")
        .map_err(|e| e.to_string())?;
    Ok(match (measure, kernels.as_deref()) {
        (true, Some(_)) => return Err("give --tune or --kernels, not both".into()),
        (true, None) => Tune::Measure,
        (false, None | Some("cached")) => Tune::Cached,
        (false, Some("rules")) => Tune::Rules,
        (false, Some(name)) => Tune::Force(name.to_string()),
    })
}
