//! Start-up: the plan and its tokenizer, the model's prompts, the service's configuration
//! (checked against the plan), and the 503 answered while all that loads.

use super::types::{Config, Counters, Model, Prompt, Shared};
use super::{fail, wire, Fail, Options};
use crate::ModelArgs;
use bert_edge::tokenize::BertTokenizer;
use bert_edge::{Error, Flavour, Plan};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Answers every connection with 503 while the model loads (TEI's `/health` says 503 until
/// the model is ready): a thread polling the listener until [`Loading::stop`].
pub(super) struct Loading {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Loading {
    pub(super) fn start(listener: &TcpListener) -> Result<Loading, Fail> {
        let l = listener.try_clone().map_err(fail)?;
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loading".into())
            .spawn(move || {
                let bytes = wire::retry_later("the model is loading", "Unhealthy");
                while !done.load(SeqCst) {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            use std::io::{Read, Write};
                            // Read what the client sent (briefly) so that closing does not
                            // reset the connection before it reads the answer.
                            let t = Some(std::time::Duration::from_millis(200));
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(t);
                            let _ = c.set_write_timeout(t);
                            let _ = c.read(&mut [0u8; 4096]);
                            let _ = c.write_all(&bytes);
                            let _ = c.shutdown(std::net::Shutdown::Write);
                            let _ = c.read(&mut [0u8; 4096]);
                        }
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                    }
                }
            })
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        Ok(Loading { stop, thread })
    }

    pub(super) fn stop(self) {
        self.stop.store(true, SeqCst);
        let _ = self.thread.join();
    }
}

/// The model's prompts with their token counts, and the index of the default one.
fn prompts(
    info: &bert_edge::PlanInfo,
    tok: &BertTokenizer,
) -> Result<(Vec<Prompt>, Option<usize>), Error> {
    let Some(st) = &info.sentence else {
        return Ok((Vec::new(), None));
    };
    let mut out = Vec::with_capacity(st.prompts.len());
    for (name, text) in &st.prompts {
        out.push(Prompt {
            name: name.clone(),
            text: text.clone(),
            tokens: tok.prompt_length(text, info.seq)?,
        });
    }
    let default = st
        .default_prompt_name
        .as_ref()
        .and_then(|d| out.iter().position(|p| &p.name == d));
    Ok((out, default))
}

/// The plan, its tokenizer and what the service shows of it.
fn load_model(m: &ModelArgs, opts: &Options) -> Result<(Arc<Plan>, Model), Fail> {
    // Workers × threads = the machine's cores unless --threads says otherwise.
    let mut m = m.clone();
    m.threads
        .get_or_insert((crate::cores() / opts.workers.max(1)).max(1));
    let plan = Arc::new(m.load().map_err(fail)?);
    let tokenizer = BertTokenizer::for_plan(&plan).map_err(fail)?;
    eprintln!(
        "bert-edge: tokenizer: {}",
        plan.tokenizer().map_or("", |t| t.0)
    );
    let info = plan.info().clone();
    if info.flavour != Flavour::Ids {
        return Err(fail(format!(
            "{} is an inputs_embeds model: serve needs an input_ids model (bert_ids_*.onnx)",
            m.model.display()
        )));
    }
    if info.seq < tokenizer.min_len(true) {
        return Err(fail(format!(
            "sequence length {} is too short for [CLS] A [SEP] B [SEP]",
            info.seq
        )));
    }
    if info.batch > 1 && info.variant != bert_edge::Variant::Int8 {
        eprintln!(
            "bert-edge: note: an {} batch runs every row at its longest text's length, unused \
             rows included; on texts of mixed lengths it measured slower than --batch 1 \
             (docs/reference/lengths.md#dynamic-batching)",
            info.variant
        );
    }
    let embedding = crate::encode::embedding_for(&plan, opts.pooling, opts.normalize)?;
    if embedding.is_some() {
        let (what, flag) = match opts.normalize.unwrap_or(true) {
            true => ("normalize", "TEI's default; --no-normalize to change"),
            false => ("do not normalize", "--no-normalize"),
        };
        eprintln!(
            "bert-edge: /embed and /v1/embeddings {what} unless a request says \"normalize\" ({flag})"
        );
    }
    let (prompts, default_prompt) = prompts(&info, &tokenizer).map_err(fail)?;
    let stem = m
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let name = opts.served_name.clone().or(stem).unwrap_or_default();
    let model = Model {
        tokenizer,
        kernels: plan.kernels().to_vec(),
        info,
        embedding,
        prompts,
        default_prompt,
        name,
    };
    Ok((plan, model))
}

/// Tokenizer, plan and the shared state, checked for what the service needs.
pub(super) fn setup(m: &ModelArgs, opts: &Options) -> Result<(Arc<Plan>, Arc<Shared>), Fail> {
    let (plan, model) = load_model(m, opts)?;
    let seq = model.info.seq;
    let max_input_length = opts.max_input_length.unwrap_or(seq);
    if max_input_length > seq {
        return Err(fail(format!(
            "--max-input-length {max_input_length} is over the plan's sequence length {seq} (--seq)"
        )));
    }
    let max_items = opts.max_items.min(opts.queue);
    if max_items < opts.max_items {
        eprintln!("bert-edge: --max-client-batch-size lowered to the queue size, {max_items}");
    }
    let config = Config {
        max_items,
        max_text_bytes: opts.max_text_bytes,
        max_body: opts.max_body,
        max_input_length,
        auto_truncate: opts.auto_truncate,
        normalize: opts.normalize.unwrap_or(true),
        queue_cap: opts.queue,
        batch: model.info.batch,
        batch_wait: opts.batch_wait,
        workers: opts.workers,
        // More handlers than texts can be admitted (queue + running), so the inference queue's
        // all-or-none reservation is what answers 429 under load, with `--queue` as the real
        // bound on waiting work.
        handlers: opts
            .max_concurrent
            .unwrap_or((opts.workers + opts.queue + 4).min(256)),
        api_key: opts.api_key.clone(),
        hooks: opts.hooks.clone(),
    };
    let shared = Shared {
        config,
        model,
        counters: Counters::default(),
    };
    Ok((plan, Arc::new(shared)))
}
