//! Inference workers: one `Encoder` each over the shared plan, fed from the bounded queue.
//! They never do I/O, so a slow client cannot stall one.

use super::{lock, Done, Failure, Item, Shared, Work};
use crate::tasks::{self, Scratch};
use bert_edge::heads::pool_into;
use bert_edge::{Encoder, Plan};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// Takes texts from `rx` until the queue closes; answers each on its item's channel.
pub(super) fn worker(
    shared: &Shared,
    rx: &Mutex<Receiver<Item>>,
    plan: &Arc<Plan>,
    mut encoder: Encoder,
) {
    // Allocated once, reused for every text.
    let mut scratch = Scratch::new(plan);
    loop {
        let item = lock(rx).recv();
        let Ok(item) = item else { break };
        shared.queued.fetch_sub(1, SeqCst);
        shared.busy.fetch_add(1, SeqCst);
        // The library turns a panic inside tract into an error; this catches one in our code.
        let res = catch_unwind(AssertUnwindSafe(|| {
            infer(shared, &mut encoder, &mut scratch, &item)
        }));
        let res = res.unwrap_or_else(|_| {
            if let Ok(e) = Encoder::new(plan.clone()) {
                encoder = e;
            }
            Err(Failure::new(500, "internal error: inference panicked"))
        });
        shared.busy.fetch_sub(1, SeqCst);
        shared.metrics.inference_done(&res);
        let _ = item.reply.send((item.index, res));
    }
}

fn infer(
    shared: &Shared,
    encoder: &mut Encoder,
    s: &mut Scratch,
    item: &Item,
) -> Result<Done, Failure> {
    if !shared.test_delay.is_zero() {
        std::thread::sleep(shared.test_delay);
    }
    let pair = item.pair.as_deref();
    let normalize = match item.work {
        Work::Embed { normalize } => normalize,
        Work::Head(head) => {
            let answer = tasks::run(head, &shared.tokenizer, encoder, s, &item.text, pair)?;
            return Ok(Done {
                vector: Vec::new(),
                tokens: answer["tokens"].as_u64().unwrap_or(0) as usize,
                truncated: answer["truncated"].as_bool().unwrap_or(false),
                answer: Some(answer),
            });
        }
    };
    let pooling = shared
        .pooling
        .ok_or_else(|| Failure::new(404, "this model has no embeddings"))?;
    let done = shared
        .tokenizer
        .encode_into(&item.text, pair, &mut s.inputs)?;
    encoder.run(s.inputs.as_input(), &mut s.out)?;
    let mut vector = vec![0f32; s.out.hidden_size()];
    pool_into(
        pooling,
        &s.out,
        &s.inputs.attention_mask,
        0,
        normalize,
        &mut vector,
    )?;
    Ok(Done {
        vector,
        answer: None,
        tokens: done.tokens,
        truncated: done.truncated,
    })
}
