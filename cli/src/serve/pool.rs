//! Inference workers: one `Encoder` each over the shared plan, fed from the bounded queue.
//! They never do I/O, so a slow client cannot stall one.
//!
//! Dynamic batching (`--batch B`, a plan of B rows): a worker takes the first queued text,
//! then whatever else arrives within `--batch-wait-ms` until it holds B, and runs them as one
//! call ([`Encoder::run_with`] with a [`bert_edge::Call`] of that many rows). Each text is still answered on its own: one that fails to
//! tokenize or to post-process fails alone, and if the batched run itself fails (or panics in
//! our code), each text is run again alone so that only a text that fails by itself gets the
//! error.

use super::lock;
use super::outputs;
use super::types::{Done, Failure, Item, Shared, Text, Work};
use crate::tasks::Scratch;
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
        shared.counters.busy.fetch_add(1, SeqCst);
        shared.counters.metrics.batch_run();
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
        shared.counters.busy.fetch_sub(1, SeqCst);
        let mut results = results.drain(..);
        for item in items.drain(..) {
            let res = results.next().unwrap_or_else(panicked);
            shared.counters.metrics.inference_done(&res);
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
    shared.counters.queued.fetch_sub(1, SeqCst);
    items.push(first);
    let deadline = Instant::now() + shared.config.batch_wait;
    while items.len() < batch {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = if left.is_zero() {
            rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            rx.recv_timeout(left)
        };
        let Ok(item) = next else { break };
        shared.counters.queued.fetch_sub(1, SeqCst);
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
    let c = &shared.config;
    c.hooks.before_call();
    let t0 = Instant::now();
    results.clear();
    let mut rows: Vec<Row> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Text::One(t) = &item.input {
            c.hooks.on_text(t);
        }
        match encode(shared, s, rows.len(), item) {
            Ok(done) => {
                rows.push(Row { item: i, done });
                // A placeholder, replaced below once the row has run.
                results.push(Err(Failure::new(500, "internal error: not run")));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if rows.is_empty() {
        return true;
    }
    let call = bert_edge::Call {
        rows: Some(rows.len()),
        length: None,
    };
    if let Err(e) = encoder.run_with(s.inputs.as_input(), &mut s.out, call) {
        if rows.len() > 1 {
            return false;
        }
        results[rows[0].item] = Err(e.into());
        return true;
    }
    for (r, row) in rows.iter().enumerate() {
        let item = &items[row.item];
        let res = outputs::answer(shared, encoder.plan(), s, r, item, row.done);
        results[row.item] = res.map(|mut d| {
            d.queue = t0.saturating_duration_since(item.queued);
            d.inference = t0.elapsed();
            d
        });
    }
    true
}

/// Tokenizes (or copies the ids of) `item` into row `r`: a head's input as its command
/// does, anything else at most `--max-input-length` tokens, cut only if the request allows.
fn encode(shared: &Shared, s: &mut Scratch, r: usize, item: &Item) -> Result<Tokenized, Failure> {
    let (tok, max) = (&shared.model.tokenizer, shared.config.max_input_length);
    let side = item.truncation.side;
    let done = match (&item.input, item.work) {
        (Text::One(t), Work::Head(head)) => s.encode(tok, Some(head), r, t, None)?,
        (Text::Pair(a, b), Work::Head(head)) => s.encode(tok, Some(head), r, a, Some(b))?,
        (Text::One(t), _) => s.encode_at_most(tok, r, (t, None), side, max)?,
        (Text::Pair(a, b), _) => s.encode_at_most(tok, r, (a, Some(b)), side, max)?,
        // Checked against the vocabulary before they were queued (`request::run_all`).
        (Text::Ids(ids), _) => s.put_ids(r, ids, side, max),
    };
    let head = matches!(item.work, Work::Head(_));
    if done.truncated && !item.truncation.allow && !head {
        shared.counters.metrics.limit("max_input_length");
        return Err(Failure::validation(format!(
            "`inputs` must have less than {max} tokens. Given: {}",
            done.full
        )));
    }
    Ok(done)
}
