//! Inference workers: one `Encoder` each over the shared plan, fed from the bounded queue.
//! They never do I/O, so a slow client cannot stall one.
//!
//! Dynamic batching (`--batch B`, a plan of B rows): a worker takes the first queued text,
//! then whatever else arrives within `--batch-wait-ms` until it holds B, and runs them as one
//! call ([`Encoder::run_rows`]). Each text is still answered on its own: one that fails to
//! tokenize or to post-process fails alone, and if the batched run itself fails (or panics in
//! our code), each text is run again alone so that only a text that fails by itself gets the
//! error.

use super::{lock, Done, Failure, Item, Shared, Work};
use crate::tasks::{self, Scratch};
use bert_edge::heads::pool_into;
use bert_edge::tokenize::Tokenized;
use bert_edge::{Encoder, Plan};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Takes texts from `rx` until the queue closes; answers each on its item's channel.
pub(super) fn worker(
    shared: &Shared,
    rx: &Mutex<Receiver<Item>>,
    plan: &Arc<Plan>,
    mut encoder: Encoder,
) {
    // Allocated once, reused for every call.
    let mut scratch = Scratch::new(plan);
    let mut items: Vec<Item> = Vec::with_capacity(plan.info().batch);
    let mut results = Vec::with_capacity(plan.info().batch);
    while take(shared, rx, plan.info().batch, &mut items) {
        shared.busy.fetch_add(1, SeqCst);
        shared.metrics.batch_run();
        // The library turns a panic inside tract into an error; this catches one in our code.
        // After one, or after a failed batched run, each text is tried again alone, so only
        // the one that fails by itself gets the error.
        let mut guarded = |items: &[Item], results: &mut Vec<Result<Done, Failure>>| {
            let ok = catch_unwind(AssertUnwindSafe(|| {
                infer(shared, &mut encoder, &mut scratch, items, results)
            }));
            if ok.is_err() {
                if let Ok(e) = Encoder::new(plan.clone()) {
                    encoder = e;
                }
                results.clear();
            }
            ok.unwrap_or(false)
        };
        if !guarded(&items, &mut results) && items.len() > 1 {
            results.clear();
            let mut one = Vec::with_capacity(1);
            for item in items.iter() {
                guarded(std::slice::from_ref(item), &mut one);
                results.push(one.pop().unwrap_or_else(panicked));
            }
        }
        shared.busy.fetch_sub(1, SeqCst);
        let mut results = results.drain(..);
        for item in items.drain(..) {
            let res = results.next().unwrap_or_else(panicked);
            shared.metrics.inference_done(&res);
            let _ = item.reply.send((item.index, res));
        }
    }
}

fn panicked() -> Result<Done, Failure> {
    Err(Failure::new(500, "internal error: inference panicked"))
}

/// Blocks for the first item, then (batch > 1) takes more until the batch is full or the
/// wait is over. False once the queue is closed and empty.
fn take(shared: &Shared, rx: &Mutex<Receiver<Item>>, batch: usize, items: &mut Vec<Item>) -> bool {
    let rx = lock(rx);
    let Ok(first) = rx.recv() else { return false };
    shared.queued.fetch_sub(1, SeqCst);
    items.push(first);
    let deadline = Instant::now() + shared.batch_wait;
    while items.len() < batch {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = if left.is_zero() {
            rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            rx.recv_timeout(left)
        };
        let Ok(item) = next else { break };
        shared.queued.fetch_sub(1, SeqCst);
        items.push(item);
    }
    true
}

/// A text tokenized into its row of the batch.
struct Row {
    item: usize,
    done: Tokenized,
}

/// Runs `items` as one call; `results` gets one result per item, in order. False (results
/// incomplete) when the run of several texts failed: the caller tries each text alone.
fn infer(
    shared: &Shared,
    encoder: &mut Encoder,
    s: &mut Scratch,
    items: &[Item],
    results: &mut Vec<Result<Done, Failure>>,
) -> bool {
    if !shared.test_delay.is_zero() {
        std::thread::sleep(shared.test_delay);
    }
    results.clear();
    let mut rows: Vec<Row> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if shared.test_panic.as_deref() == Some(item.text.as_str()) {
            panic!("--test-panic-on: a worker panics on this text");
        }
        let head = match item.work {
            Work::Head(head) => Some(head),
            Work::Embed { .. } if shared.embedding.is_none() => {
                results.push(Err(Failure::new(404, "this model has no embeddings")));
                continue;
            }
            Work::Embed { .. } => None,
        };
        let r = rows.len();
        match s.encode(&shared.tokenizer, head, r, &item.text, item.pair.as_deref()) {
            Ok(done) => {
                rows.push(Row { item: i, done });
                // A placeholder, replaced below once the row has run.
                results.push(Err(Failure::new(500, "internal error: not run")));
            }
            Err(e) => results.push(Err(e.into())),
        }
    }
    if rows.is_empty() {
        return true;
    }
    if let Err(e) = encoder.run_rows(s.inputs.as_input(), &mut s.out, rows.len()) {
        if rows.len() > 1 {
            return false;
        }
        results[rows[0].item] = Err(e.into());
        return true;
    }
    for (r, row) in rows.iter().enumerate() {
        results[row.item] = answer(shared, encoder.plan(), s, r, &items[row.item], row.done);
    }
    true
}

/// Row `r`'s answer: the head's JSON, or the pooled (and normalized) vector.
fn answer(
    shared: &Shared,
    plan: &Plan,
    s: &Scratch,
    r: usize,
    item: &Item,
    done: Tokenized,
) -> Result<Done, Failure> {
    let normalize = match item.work {
        Work::Head(head) => {
            let answer =
                tasks::answer(head, plan.info(), &shared.tokenizer, s, r, &item.text, done)?;
            return Ok(Done {
                vector: Vec::new(),
                tokens: done.tokens,
                truncated: done.truncated,
                answer: Some(answer),
            });
        }
        Work::Embed { normalize, prompt } => (normalize, prompt),
    };
    let (normalize, prompt) = normalize;
    let e = shared
        .embedding
        .as_ref()
        .ok_or_else(|| Failure::new(404, "this model has no embeddings"))?;
    let mut vector = vec![0f32; s.out.hidden_size()];
    let skip = prompt
        .and_then(|p| shared.prompts.get(p))
        .filter(|_| e.exclude_prompt)
        .map_or(0, |p| p.tokens);
    let mask = &s.inputs.attention_mask;
    if skip == 0 {
        pool_into(e.pooling, &s.out, mask, r, normalize, &mut vector)?;
    } else {
        // sentence-transformers' include_prompt = false: [CLS] and the prompt leave the pooling.
        let mut m = mask.to_vec();
        let n = s.out.seq_len();
        m[r * n..r * n + skip.min(n)].fill(0);
        pool_into(e.pooling, &s.out, &m, r, normalize, &mut vector)?;
    }
    Ok(Done {
        vector,
        answer: None,
        tokens: done.tokens,
        truncated: done.truncated,
    })
}
