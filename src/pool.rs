//! A fixed thread pool for the CPU kernels: workers spin briefly, then sleep, between jobs.
//!
//! candle's pool reads `CANDLE_NUM_THREADS` once per process; chimera needs the thread count to be
//! an option (`num_thread`) and a dispatch cheap enough for ~130 matrix products per token, so the
//! caller runs a share of every job itself and the workers wait on an atomic generation counter.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// Incremented once per job; workers run the job when they see it change.
    generation: AtomicUsize,
    /// Workers that finished the current job.
    done: AtomicUsize,
    /// The current job, valid while `run` waits (lifetime erased; see `run`).
    job: Mutex<Option<&'static Job>>,
    sleepers: AtomicUsize,
    wake: Condvar,
    wake_lock: Mutex<()>,
    quit: std::sync::atomic::AtomicBool,
}

/// A pool of `n - 1` workers plus the calling thread.
pub struct Pool {
    n: usize,
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
    busy: Mutex<()>,
}

/// Spins before a worker sleeps: long enough to cover the gap between two layers' products.
const SPIN: u32 = 200_000;

impl Pool {
    /// Creates a pool that runs jobs on `n` threads (at least 1).
    pub fn new(n: usize) -> Pool {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            quit: false.into(),
        });
        let handles = (1..n)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("chimera-{i}"))
                    .spawn(move || worker(s, i, n))
                    .expect("invariant: the OS can start a thread at load")
            })
            .collect();
        Pool { n, shared, handles, busy: Mutex::new(()) }
    }

    /// Number of threads a job runs on.
    pub fn threads(&self) -> usize {
        self.n
    }

    /// Runs `f(thread_index, n_threads)` on every thread and returns when all have finished.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        if self.n == 1 {
            f(0, 1);
            return;
        }
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the reference is only used by workers between the generation bump below and the
        // moment `done` reaches n - 1, and this function does not return before that moment, so the
        // job outlives every use.
        let job: &'static Job = unsafe {
            &*std::mem::transmute::<*const (dyn Fn(usize, usize) + Sync + '_), *const Job>(f)
        };
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        self.shared.done.store(0, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        if self.shared.sleepers.load(Ordering::Acquire) > 0 {
            let _l = self.shared.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        f(0, self.n);
        while self.shared.done.load(Ordering::Acquire) < self.n - 1 {
            std::hint::spin_loop();
        }
    }
}

impl Pool {
    /// Runs `f` over `0..len` in chunks of `grain` that the threads claim as they finish, so a
    /// thread slowed by its neighbours (or by heavier rows) takes fewer: for jobs large enough
    /// that one atomic claim per chunk is nothing beside the chunk's work.
    pub fn run_chunks(&self, len: usize, grain: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let grain = grain.max(1);
        let next = AtomicUsize::new(0);
        self.run(&|_, _| loop {
            let start = next.fetch_add(1, Ordering::Relaxed) * grain;
            if start >= len {
                break;
            }
            f(start..(start + grain).min(len));
        });
    }
}

fn worker(s: Arc<Shared>, i: usize, n: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0u32;
        loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                let l = s.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::AcqRel);
                if s.generation.load(Ordering::Acquire) == seen && !s.quit.load(Ordering::Acquire) {
                    let _l = s.wake.wait_timeout(l, std::time::Duration::from_millis(50));
                }
                s.sleepers.fetch_sub(1, Ordering::AcqRel);
                spins = 0;
            }
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = job {
            job(i, n);
        }
        s.done.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        {
            let _l = self.shared.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The half-open range of `0..len` that thread `i` of `n` owns, in whole multiples of `grain`.
pub fn split(len: usize, i: usize, n: usize, grain: usize) -> std::ops::Range<usize> {
    let units = len.div_ceil(grain);
    let per = units.div_ceil(n);
    let start = (i * per * grain).min(len);
    let end = ((i + 1) * per * grain).min(len);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_is_covered_once() {
        for n in 1..4 {
            let pool = Pool::new(n);
            let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.run(&|i, n| {
                    for k in split(hits.len(), i, n, 7) {
                        hits[k].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
        }
    }

    #[test]
    fn claimed_chunks_cover_every_index_once() {
        for n in 1..4 {
            let pool = Pool::new(n);
            let hits: Vec<AtomicUsize> = (0..1001).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.run_chunks(hits.len(), 16, &|r| {
                    assert!(r.len() <= 16 && r.start % 16 == 0);
                    for k in r {
                        hits[k].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
        }
    }
}
