//! The deterministic batcher: which texts go into which batch of an epoch,
//! and worker threads that build the batches while delivering them in
//! index order.
//!
//! An epoch's plan ([`epoch_batches`]) is a pure function of `(seed, epoch,
//! lengths, batch size)`, like fastai's `SortedDL` with shuffling:
//! 1. a Philox-driven Fisher-Yates permutation of the texts (stream
//!    `data_shuffle[0]`, step = epoch);
//! 2. chunks of `50 * batch_size` texts of that permutation, each sorted by
//!    length, longest first (a stable sort: ties keep the permutation's
//!    order), so that a batch holds texts of similar length;
//! 3. the chunks cut into batches of `batch_size` (a last batch of a single
//!    text joins the one before it: BatchNorm needs two rows to train);
//! 4. the batch holding the longest text first (the step that needs the
//!    most memory comes first, so the device pool reaches its peak at once),
//!    the others in the order of a second permutation (`data_shuffle[1]`).
//!
//! [`Prefetch`] builds the batches of a plan on `workers` threads and hands
//! them out in index order, so what the trainer sees does not depend on the
//! number of workers or on their timing.

use super::shuffle::permutation;
use crate::error::{Error, Result};
use crate::rng::{Stream, StreamFamily};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Texts per sorting chunk, in batches (fastai's `SortedDL` uses 50).
pub const CHUNK_BATCHES: usize = 50;

/// A last batch of a single text joins the one before it (BatchNorm needs
/// two rows to train).
pub fn join_lone_last(batches: &mut Vec<Vec<usize>>) {
    if batches.len() > 1 && batches.last().is_some_and(|b| b.len() == 1) {
        if let Some(lone) = batches.pop() {
            if let Some(prev) = batches.last_mut() {
                prev.extend(lone);
            }
        }
    }
}

/// The batches of epoch `epoch` over texts of `lengths`: each batch is a
/// list of text indices. Every index appears exactly once.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u32,
) -> Result<Vec<Vec<usize>>> {
    if batch_size < 2 {
        return Err(Error::invalid(
            "epoch_batches",
            format!("batch size {batch_size}: at least 2 (BatchNorm needs two rows)"),
        ));
    }
    if lengths.len() < 2 {
        return Err(Error::invalid(
            "epoch_batches",
            format!("{} training texts: at least 2 are needed", lengths.len()),
        ));
    }
    let order = permutation(
        seed,
        Stream::new(StreamFamily::DataShuffle, 0),
        epoch,
        lengths.len(),
    );
    let mut sorted = Vec::with_capacity(order.len());
    for chunk in order.chunks(CHUNK_BATCHES.saturating_mul(batch_size)) {
        let mut c = chunk.to_vec();
        c.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        sorted.extend(c);
    }
    let mut batches: Vec<Vec<usize>> = sorted.chunks(batch_size).map(<[usize]>::to_vec).collect();
    join_lone_last(&mut batches);
    // The longest text leads its chunk, so it is the first text of a batch.
    let longest = (0..batches.len())
        .max_by(|&a, &b| {
            // Longest first; the earlier batch on ties (max_by keeps the last).
            lengths[batches[a][0]]
                .cmp(&lengths[batches[b][0]])
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let first = batches.remove(longest);
    let rest = permutation(
        seed,
        Stream::new(StreamFamily::DataShuffle, 1),
        epoch,
        batches.len(),
    );
    let mut out = Vec::with_capacity(batches.len() + 1);
    out.push(first);
    out.extend(rest.into_iter().map(|i| std::mem::take(&mut batches[i])));
    Ok(out)
}

/// Batches built on worker threads, yielded in index order.
///
/// Workers take the next index from a shared counter, build it with
/// `build`, and send it back; the iterator holds early arrivals until their
/// turn. The channel holds at most `2 * workers` finished batches, so the
/// workers run at most that far ahead of the consumer, plus the batches
/// that arrived before a slower worker's earlier one (held until it comes).
/// Dropping the iterator stops the workers at their next batch.
pub struct Prefetch<'scope, T> {
    rx: mpsc::Receiver<(usize, T)>,
    ready: BTreeMap<usize, T>,
    next: usize,
    end: usize,
    _scope: std::marker::PhantomData<&'scope ()>,
}

impl<'scope, T: Send + 'scope> Prefetch<'scope, T> {
    /// Builds batches `start..end` with `build(index)` on `workers` threads
    /// (at least one) of `scope`.
    pub fn new<'env, F>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        workers: usize,
        start: usize,
        end: usize,
        build: F,
    ) -> Self
    where
        F: Fn(usize) -> T + Send + Sync + 'scope,
    {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::sync_channel(2 * workers);
        let counter = std::sync::Arc::new(AtomicUsize::new(start));
        let build = std::sync::Arc::new(build);
        for _ in 0..workers {
            let (tx, counter, build) = (tx.clone(), counter.clone(), build.clone());
            scope.spawn(move || loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= end || tx.send((i, build(i))).is_err() {
                    break;
                }
            });
        }
        Prefetch {
            rx,
            ready: BTreeMap::new(),
            next: start,
            end,
            _scope: std::marker::PhantomData,
        }
    }
}

impl<T> Iterator for Prefetch<'_, T> {
    type Item = (usize, T);

    fn next(&mut self) -> Option<(usize, T)> {
        if self.next >= self.end {
            return None;
        }
        while !self.ready.contains_key(&self.next) {
            // A closed channel before our index arrived means a worker
            // panicked; the scope re-raises that panic when it ends.
            let (i, t) = self.rx.recv().ok()?;
            self.ready.insert(i, t);
        }
        let i = self.next;
        self.next += 1;
        self.ready.remove(&i).map(|t| (i, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_in_exactly_one_batch_and_no_batch_has_one_row() {
        let lengths: Vec<usize> = (0..1000).map(|i| 1 + (i * 37) % 71).collect();
        for bs in [2, 3, 32, 999, 1000, 5000] {
            let b = epoch_batches(&lengths, bs, 7, 3).unwrap();
            let mut all: Vec<usize> = b.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>(), "batch size {bs}");
            assert!(b.iter().all(|x| x.len() >= 2), "batch size {bs}");
        }
    }

    #[test]
    fn the_longest_text_comes_first_and_batches_are_sorted_within() {
        let lengths: Vec<usize> = (0..500).map(|i| 1 + (i * 13) % 97).collect();
        let b = epoch_batches(&lengths, 16, 1, 0).unwrap();
        assert_eq!(lengths[b[0][0]], 97);
        for batch in &b {
            assert!(batch.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
        }
    }

    #[test]
    fn plans_depend_on_seed_and_epoch_only() {
        let lengths: Vec<usize> = (0..300).map(|i| 1 + i % 9).collect();
        let a = epoch_batches(&lengths, 8, 5, 2).unwrap();
        assert_eq!(a, epoch_batches(&lengths, 8, 5, 2).unwrap());
        assert_ne!(a, epoch_batches(&lengths, 8, 5, 3).unwrap());
        assert_ne!(a, epoch_batches(&lengths, 8, 6, 2).unwrap());
    }

    #[test]
    fn prefetch_yields_in_index_order_for_any_worker_count() {
        for workers in [1, 2, 4, 7] {
            let got: Vec<(usize, usize)> = std::thread::scope(|s| {
                Prefetch::new(s, workers, 3, 40, |i| {
                    // Uneven work, so workers finish out of order.
                    std::thread::sleep(std::time::Duration::from_micros((i % 5) as u64 * 200));
                    i * i
                })
                .collect()
            });
            let want: Vec<(usize, usize)> = (3..40).map(|i| (i, i * i)).collect();
            assert_eq!(got, want, "{workers} workers");
        }
    }

    #[test]
    fn dropping_a_prefetch_early_stops_its_workers() {
        std::thread::scope(|s| {
            let mut p = Prefetch::new(s, 3, 0, 1_000_000, |i| i);
            assert_eq!(p.next(), Some((0, 0)));
            drop(p);
        }); // returns: the workers saw the closed channel
    }
}
