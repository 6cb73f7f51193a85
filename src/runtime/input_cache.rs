//! The input tensors of an [`crate::Encoder`], one set per call length L, made on the first
//! call at that length and reused after: a call allocates nothing in this crate's code once
//! its length has been seen.
//!
//! Why not one capacity tensor reshaped to L: tract copies an input it needs to own
//! (`Tensor::deep_clone`) by its storage's byte size, not its shape, so a tensor shrunk in
//! place would be copied past the end of the new one.

use crate::error::{Error, Result};
use std::sync::Arc;
use tract_core::internal::*;

/// The input tensors for one length: first input (ids or embeds), attention_mask,
/// token_type_ids (if the graph takes them).
pub(crate) type Set = [Option<Arc<Tensor>>; 3];

#[derive(Debug)]
struct Slot {
    len: usize,
    tensors: Set,
    used: u64,
}

/// Input tensors by length, least recently used evicted beyond `budget` bytes or `max`
/// lengths (the lengths a plan's granule allows: nothing is evicted for an ids plan).
#[derive(Debug)]
pub(crate) struct InputCache {
    /// Element type and shape after `[batch, L]` (`[hidden]` for embeds) of each input.
    kinds: [Option<(DatumType, usize)>; 3],
    batch: usize,
    slots: Vec<Slot>,
    max: usize,
    budget: usize,
    clock: u64,
}

impl InputCache {
    pub(crate) fn new(
        kinds: [Option<(DatumType, usize)>; 3],
        batch: usize,
        n: usize,
        granule: usize,
    ) -> Self {
        let mut cache = InputCache {
            kinds,
            batch,
            slots: Vec::new(),
            max: n.div_ceil(granule) + granule,
            budget: 0,
            clock: 0,
        };
        // Four capacity-sized sets, at least 1 MiB: every length of an ids plan
        // (N = 512: ~0.4 MB), the recent lengths of an embeds plan (N = 512: ~6 MB).
        cache.budget = (4 * cache.bytes(n)).max(1 << 20);
        cache.slots.reserve_exact(cache.max);
        cache
    }

    fn bytes(&self, len: usize) -> usize {
        self.kinds
            .iter()
            .flatten()
            .map(|(dt, inner)| self.batch * len * inner.max(&1) * dt.size_of())
            .sum()
    }

    /// Bytes of every set held.
    fn held_bytes(&self) -> usize {
        self.slots.iter().map(|s| self.bytes(s.len)).sum()
    }

    /// The tensors for length `len`, made now if this length has not been seen (or was
    /// evicted).
    pub(crate) fn get(&mut self, len: usize) -> Result<&mut Set> {
        self.clock += 1;
        let ix = match self.slots.iter().position(|s| s.len == len) {
            Some(ix) => ix,
            None => {
                let bytes = self.bytes(len);
                let mut used = self.held_bytes();
                while !self.slots.is_empty()
                    && (self.slots.len() >= self.max || used + bytes > self.budget)
                {
                    let lru = (0..self.slots.len())
                        .min_by_key(|i| self.slots[*i].used)
                        .unwrap_or(0);
                    let gone = self.slots.swap_remove(lru);
                    used -= self.bytes(gone.len);
                }
                let mut tensors: Set = [None, None, None];
                for (t, kind) in tensors.iter_mut().zip(&self.kinds) {
                    if let Some((dt, inner)) = *kind {
                        let shape: &[usize] = if inner == 0 {
                            &[self.batch, len]
                        } else {
                            &[self.batch, len, inner]
                        };
                        *t = Some(Arc::new(Tensor::zero_dt(dt, shape).map_err(Error::Engine)?));
                    }
                }
                self.slots.push(Slot {
                    len,
                    tensors,
                    used: 0,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[ix];
        slot.used = self.clock;
        Ok(&mut slot.tensors)
    }

    /// Number of lengths held (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_kept_and_evicted_least_recently_used() {
        let ids = Some((DatumType::I64, 0));
        let mut c = InputCache::new([ids, ids, None], 1, 512, 8);
        for l in (8..=512).step_by(8) {
            let set = c.get(l).unwrap();
            assert_eq!(set[0].as_ref().unwrap().shape(), &[1, l]);
            assert!(set[2].is_none());
        }
        assert_eq!(c.held(), 64, "an ids plan keeps every length");
        for l in 1..8 {
            c.get(l).unwrap();
        }
        assert_eq!(c.held(), 71, "and those below the granule");
        let embeds = Some((DatumType::F32, 768));
        let mut c = InputCache::new([embeds, ids, ids], 1, 512, 8);
        c.get(8).unwrap();
        for l in [512, 504, 496, 488] {
            c.get(l).unwrap(); // ~1.5 MB each: just under the budget of 4 capacity sets
        }
        assert_eq!(c.held(), 5);
        c.get(8).unwrap(); // most recent
        c.get(480).unwrap(); // over budget: evicts 512 (least recent), not 8
        let lens: Vec<usize> = c.slots.iter().map(|s| s.len).collect();
        assert!(lens.contains(&8) && !lens.contains(&512), "{lens:?}");
        let used = c.held_bytes();
        assert!(used <= c.budget, "{used} > {}", c.budget);
        assert_eq!(
            c.get(480).unwrap()[0].as_ref().unwrap().shape(),
            &[1, 480, 768]
        );
    }
}
