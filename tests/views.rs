//! Views: ops read and write a window of a larger buffer, with the bits of a
//! separate buffer and without touching the rest; and the device's pool and
//! counters see every allocation and copy.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::lstm::{self, LstmShape};
use shoestring::ops::{elementwise, philox};
use shoestring::rng::{PhiloxCounter, PhiloxKey};
use support::test_devices;

fn floats(n: usize, stream: u32) -> Vec<f32> {
    philox::uniform_floats(
        PhiloxKey::from_seed(0x71e5),
        PhiloxCounter::new(0, stream, 0),
        n,
        3.0,
    )
    .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Step `t` of a `[T, B, 4H]` gate buffer goes to the LSTM cell as a view,
/// and its outputs land in step `t` of `[T, B, H]` buffers: the same bits as
/// the step run on buffers of its own, and the other steps untouched.
#[test]
fn lstm_steps_of_a_sequence_buffer_match_separate_buffers_bit_for_bit() {
    let (t_len, b, h) = (5usize, 3usize, 37usize);
    let shape = LstmShape::new(b, h);
    let gates = floats(t_len * b * 4 * h, 1);
    let c0 = floats(b * h, 2);
    let mut devices = vec![Device::Cpu];
    devices.extend(test_devices(
        "lstm_steps_of_a_sequence_buffer_match_separate_buffers_bit_for_bit",
    ));
    for dev in &devices {
        let g_all = DeviceBuffer::copy_htod(dev, &gates).unwrap();
        let mut c_all = DeviceBuffer::<f32>::zeros(dev, (t_len + 1) * b * h).unwrap();
        c_all.slice_mut(..b * h).copy_htod(&c0).unwrap();
        let mut h_all = DeviceBuffer::<f32>::zeros(dev, t_len * b * h).unwrap();
        let mut act_all = DeviceBuffer::<f32>::zeros(dev, t_len * b * 4 * h).unwrap();
        let sentinel = -7.5f32;
        // Steps 0..T-1, all but step 2 (left as zeros).
        for t in (0..t_len).filter(|&t| t != 2) {
            let (prev, next) = c_all.view_mut().split_at_mut((t + 1) * b * h);
            lstm::lstm_cell_fwd(
                dev,
                shape,
                g_all.slice(t * b * 4 * h..(t + 1) * b * 4 * h),
                prev.as_view().slice(t * b * h..),
                next.into_slice(..b * h),
                h_all.slice_mut(t * b * h..(t + 1) * b * h),
                act_all.slice_mut(t * b * 4 * h..(t + 1) * b * 4 * h),
            )
            .unwrap();
        }
        // The same steps on their own buffers, from the same c_prev values.
        let c_seq = c_all.copy_dtoh().unwrap();
        let h_seq = h_all.copy_dtoh().unwrap();
        for t in (0..t_len).filter(|&t| t != 2) {
            let g = DeviceBuffer::copy_htod(dev, &gates[t * b * 4 * h..][..b * 4 * h]).unwrap();
            let cp = DeviceBuffer::copy_htod(dev, &c_seq[t * b * h..][..b * h]).unwrap();
            let (c, hh, _) = lstm::lstm_cell_fwd_new(dev, shape, &g, &cp).unwrap();
            assert_eq!(
                bits(&c.copy_dtoh().unwrap()),
                bits(&c_seq[(t + 1) * b * h..][..b * h]),
                "{dev} step {t} c"
            );
            assert_eq!(
                bits(&hh.copy_dtoh().unwrap()),
                bits(&h_seq[t * b * h..][..b * h]),
                "{dev} step {t} h"
            );
        }
        assert!(h_seq[2 * b * h..3 * b * h].iter().all(|&x| x == 0.0));
        // A write through a view stays inside it.
        let mut y = DeviceBuffer::copy_htod(dev, &vec![sentinel; 100]).unwrap();
        let x = DeviceBuffer::copy_htod(dev, &floats(100, 3)).unwrap();
        elementwise::add(dev, x.slice(10..20), x.slice(20..30), y.slice_mut(40..50)).unwrap();
        let got = y.copy_dtoh().unwrap();
        let xs = x.copy_dtoh().unwrap();
        for (i, v) in got.iter().enumerate() {
            if (40..50).contains(&i) {
                assert_eq!(v.to_bits(), (xs[i - 30] + xs[i - 20]).to_bits());
            } else {
                assert_eq!(*v, sentinel, "{dev} element {i} outside the view");
            }
        }
    }
}

/// Every buffer comes from the device's pool: a second round of the same
/// sizes reuses blocks and allocates nothing; copies are counted by direction.
#[test]
fn the_pool_reuses_blocks_and_the_counters_count_copies() {
    for dev in test_devices("the_pool_reuses_blocks_and_the_counters_count_copies") {
        if !matches!(dev, Device::Sim(_)) {
            continue; // a GPU's counters may see other tests' work
        }
        let round = || {
            let a = DeviceBuffer::copy_htod(&dev, &floats(1000, 4)).unwrap();
            let mut out = DeviceBuffer::<f32>::alloc(&dev, 1000).unwrap();
            elementwise::scale(&dev, 2.0, &a, &mut out).unwrap();
            out.copy_dtoh().unwrap()
        };
        let c0 = dev.counters();
        let first = round();
        let c1 = dev.counters();
        let second = round();
        let c2 = dev.counters().since(&c1);
        assert_eq!(bits(&first), bits(&second));
        assert_eq!(c1.since(&c0).allocations, 2, "{:?}", c1.since(&c0));
        assert_eq!((c2.allocations, c2.reuses), (0, 2), "{c2:?}");
        assert_eq!((c2.htod_copies, c2.dtoh_copies), (1, 1), "{c2:?}");
        assert_eq!(c2.live_bytes, 0);
        assert!(dev.release_cached() >= 8000);
    }
}
