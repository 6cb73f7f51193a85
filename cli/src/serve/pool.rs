//! Inference workers: one `Encoder` each over the shared plan, fed from the bounded queue.
//! They never do I/O, so a slow client cannot stall one.

use super::{lock, Embedding, Failure, Item, Shared};
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
    let (mut inputs, mut out) = (plan.inputs(), plan.outputs());
    loop {
        let item = lock(rx).recv();
        let Ok(item) = item else { break };
        shared.queued.fetch_sub(1, SeqCst);
        shared.busy.fetch_add(1, SeqCst);
        // The library turns a panic inside tract into an error; this catches one in our code.
        let res = catch_unwind(AssertUnwindSafe(|| {
            infer(shared, &mut encoder, &mut inputs, &mut out, &item)
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
    inputs: &mut bert_edge::Inputs,
    out: &mut bert_edge::Outputs,
    item: &Item,
) -> Result<Embedding, Failure> {
    if !shared.test_delay.is_zero() {
        std::thread::sleep(shared.test_delay);
    }
    let pair = item.pair.as_deref();
    let done = shared.tokenizer.encode_into(&item.text, pair, inputs)?;
    encoder.run(inputs.as_input(), out)?;
    let mut vector = vec![0f32; out.hidden_size()];
    pool_into(
        shared.pooling,
        out,
        &inputs.attention_mask,
        0,
        item.normalize,
        &mut vector,
    )?;
    Ok(Embedding {
        vector,
        tokens: done.tokens,
        truncated: done.truncated,
    })
}
