//! An encoder's matmul threads: a rayon pool of its own as tract's executor, and how one call
//! runs on it.
//!
//! tract threads its matmuls (and large packings): each one is split into chunks run on the
//! executor's pool. Called from outside the pool, every matmul would be injected into the
//! pool, wake its sleeping workers and put the caller to sleep until the last chunk is done:
//! two thread hand-offs per matmul, ~100 matmuls a call, each wake-up a few tens of µs on a
//! VM or a busy board. So a call runs *on* the pool ([`Threads::run`]):
//! - the call's serial ops (norms, softmax, GELU, quantizers) run on one pool worker, which
//!   also starts its share of each matmul at once;
//! - the other workers spin for the length of the call (`spawn_broadcast` + `yield_now`),
//!   so they pick up the chunks as soon as they are queued instead of sleeping between
//!   matmuls — onnxruntime's pool spins the same way by default. They stop when the call
//!   ends (nothing spins between calls), or after [`SPIN_IDLE`] without a chunk to take.
//!
//! rayon allocates the broadcast's jobs (a few small blocks per call, next to tract's
//! ~3,700), so a threaded call is not allocation-free the way a 1-thread call's crate code is.
//!
//! Measured with `bert-edge bench --threads 1|2` on a 2-core `AMD EPYC` (docs/reference/lengths.md).

#[cfg(not(feature = "multithread"))]
use crate::error::Error;
use crate::error::Result;
#[cfg(feature = "multithread")]
use rayon::Yield;
#[cfg(feature = "multithread")]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "multithread")]
use std::sync::Arc;
#[cfg(feature = "multithread")]
use std::time::{Duration, Instant};
use tract_core::internal::tract_linalg::multithread::{multithread_tract_scope, Executor};

/// How long a spinning worker waits for a chunk before it goes back to rayon's sleep. In base
/// calls the gaps between matmuls (norms, softmax, GELU) are shorter: counted over three
/// `bench --threads 2` runs up to L = 512, a spinner left 1–3 times a run (docs/reference/lengths.md).
/// One that finds nothing for this long is on a call with long serial steps or shares its
/// core with other busy threads (more encoders × threads than cores), where spinning only
/// takes CPU time from the threads doing the work.
#[cfg(feature = "multithread")]
const SPIN_IDLE: Duration = Duration::from_millis(5);

/// tract's executor for one encoder and the number of calls it has finished.
#[derive(Debug)]
pub(crate) struct Threads {
    executor: Executor,
    /// Calls finished on the pool: a call's spinners run while it still reads what it read
    /// when the call began.
    #[cfg(feature = "multithread")]
    done: Arc<AtomicUsize>,
}

impl Threads {
    /// `None` for one thread (tract runs on the caller's thread); 0 was refused by
    /// `LoadOptions::check`.
    pub(crate) fn new(threads: usize) -> Result<Option<Threads>> {
        match threads {
            0 | 1 => Ok(None),
            #[cfg(feature = "multithread")]
            n => Ok(Some(Threads {
                executor: Executor::multithread_with_name(n, "bert-edge-mm"),
                done: Arc::new(AtomicUsize::new(0)),
            })),
            #[cfg(not(feature = "multithread"))]
            n => Err(Error::bad_options(format!(
                "threads {n}: this build has no multithreaded tract (feature `multithread`)"
            ))),
        }
    }

    /// Runs `f` (one tract run) on a worker of the pool, with the pool as tract's executor,
    /// while the other workers spin for its chunks. A panic in `f` comes back to the caller.
    pub(crate) fn run<R: Send>(&mut self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(feature = "multithread")]
        if let Executor::MultiThread(pool) = &self.executor {
            let (executor, done) = (&self.executor, &self.done);
            return pool.install(|| {
                // Calls on one encoder never overlap (`&mut self`): this one is number `call`.
                let call = done.load(Ordering::Acquire);
                let _end = EndOfCall(done);
                let me = pool.current_thread_index();
                let (spin_pool, spin_done) = (pool.clone(), done.clone());
                pool.spawn_broadcast(move |ctx| {
                    if Some(ctx.index()) == me {
                        return;
                    }
                    let mut idle = 0u32;
                    let mut idle_since = Instant::now();
                    while spin_done.load(Ordering::Acquire) == call {
                        // Runs a queued matmul chunk if there is one.
                        if spin_pool.yield_now() == Some(Yield::Executed) {
                            idle = 0;
                            continue;
                        }
                        idle += 1;
                        if idle == 1 {
                            idle_since = Instant::now();
                        } else if idle.is_multiple_of(64) && idle_since.elapsed() > SPIN_IDLE {
                            // Nothing to take for a while: this worker goes back to rayon's
                            // sleep and is woken for the next chunk like any rayon worker.
                            return;
                        }
                        std::hint::spin_loop();
                    }
                });
                multithread_tract_scope(executor.clone(), f)
            });
        }
        multithread_tract_scope(self.executor.clone(), f)
    }
}

/// Counts the call done, also when it unwinds: its spinners return.
#[cfg(feature = "multithread")]
struct EndOfCall<'a>(&'a AtomicUsize);

#[cfg(feature = "multithread")]
impl Drop for EndOfCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}
