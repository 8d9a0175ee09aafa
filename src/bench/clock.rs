//! How `shoestring bench` times one operation: one warm-up call (module
//! load, pool allocation, first-touch page faults), one timed call to size a
//! batch, then the median over `reps` batches of the time per call. The GPU
//! is timed with CUDA events on the device's one stream (the host does not
//! wait between calls, as in training); the CPU and the simulator, whose ops
//! return when done, with [`Instant`].
//!
//! `f` gets the number of calls so far, so that it can rotate through
//! several sets of buffers: with the sets together larger than the last-level
//! cache, no call finds its inputs in a cache the previous call warmed.

use crate::device::Device;
use crate::error::Result;
use cudarc::driver::sys::CUevent_flags;
use std::time::Instant;

/// Timing parameters of one bench run.
#[derive(Debug, Clone)]
pub struct Clock {
    device: Device,
    /// The time one batch of calls should take, seconds.
    batch_s: f64,
    /// Timed batches; the median is reported.
    reps: usize,
}

impl Clock {
    /// `--quick`: batches of 10 ms, 5 of them; otherwise 50 ms, 11.
    pub fn new(device: &Device, quick: bool) -> Clock {
        let (batch_s, reps) = if quick { (0.010, 5) } else { (0.050, 11) };
        Clock {
            device: device.clone(),
            batch_s,
            reps,
        }
    }

    /// Timed batches per measurement.
    pub fn reps(&self) -> usize {
        self.reps
    }

    /// The median time per call of `f`, in seconds, after one warm-up call.
    pub fn median(&self, f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
        let mut t = Timed::start(self, 1, f)?;
        let samples = (0..self.reps)
            .map(|_| t.batch(self))
            .collect::<Result<Vec<_>>>()?;
        Ok(median(samples))
    }

    /// The medians of `f` and of its reference `g` (each rotating through
    /// its own number of buffer sets, each warmed up on every set once), in
    /// seconds per call, timed in alternating batches (f, g, f, g, ...): a
    /// drift of the machine's speed during the measurement moves both
    /// alike, so their ratio keeps.
    pub fn median_pair(
        &self,
        (f_sets, f): (usize, impl FnMut(usize) -> Result<()>),
        (g_sets, g): (usize, impl FnMut(usize) -> Result<()>),
    ) -> Result<(f64, f64)> {
        let mut tf = Timed::start(self, f_sets, f)?;
        let mut tg = Timed::start(self, g_sets, g)?;
        let (mut fs, mut gs) = (Vec::with_capacity(self.reps), Vec::with_capacity(self.reps));
        for _ in 0..self.reps {
            fs.push(tf.batch(self)?);
            gs.push(tg.batch(self)?);
        }
        Ok((median(fs), median(gs)))
    }

    /// Seconds per call over `inner` calls.
    fn batch(
        &self,
        f: &mut impl FnMut(usize) -> Result<()>,
        calls: &mut usize,
        inner: usize,
    ) -> Result<f64> {
        let mut run = |calls: &mut usize| -> Result<()> {
            for _ in 0..inner {
                f(*calls)?;
                *calls += 1;
            }
            Ok(())
        };
        match &self.device {
            Device::Cuda(d) => {
                let stream = d.cudarc_stream();
                let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
                let start = stream.record_event(timing)?;
                run(calls)?;
                let end = stream.record_event(timing)?;
                // elapsed_ms waits for `end`.
                Ok(f64::from(start.elapsed_ms(&end)?) * 1e-3 / inner as f64)
            }
            Device::Cpu | Device::Sim(_) => {
                let t = Instant::now();
                run(calls)?;
                self.device.synchronize()?;
                Ok(t.elapsed().as_secs_f64() / inner as f64)
            }
        }
    }
}

/// The middle sample (the upper one of an even count).
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// An op being timed: its calls so far (for rotating buffers) and the
/// calls per batch.
struct Timed<F> {
    f: F,
    calls: usize,
    inner: usize,
}

impl<F: FnMut(usize) -> Result<()>> Timed<F> {
    /// Warms `f` up on each of its `sets` buffer sets (first-touch page
    /// faults, pool growth, module loads: no timed call pays for them), then
    /// times one call to size a batch of about `clock`'s batch time.
    fn start(clock: &Clock, sets: usize, mut f: F) -> Result<Self> {
        let mut calls = 0usize;
        for _ in 0..sets.max(1) {
            f(calls)?;
            calls += 1;
        }
        clock.device.synchronize()?;
        let once = clock.batch(&mut f, &mut calls, 1)?.max(1e-7);
        let inner = (clock.batch_s / once).ceil().clamp(1.0, 1e5) as usize;
        Ok(Timed { f, calls, inner })
    }

    /// Seconds per call over one batch.
    fn batch(&mut self, clock: &Clock) -> Result<f64> {
        clock.batch(&mut self.f, &mut self.calls, self.inner)
    }
}
