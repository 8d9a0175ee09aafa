//! Philox4x32-10: the CPU twin against Random123's known answers, and every
//! device that runs the kernel (Sim under two thread orders, the GPU when
//! present) against the CPU twin, bit for bit.

mod support;

use shoestring::device::{Device, DeviceBuffer};
use shoestring::ops::philox::{self, cpu, PhiloxCounter, PhiloxKey};
use shoestring::rng::{RngState, Stream, StreamFamily};
use support::test_devices;

/// Random123's `tests/kat_vectors` (github.com/DEShawResearch/random123), the
/// three `philox4x32 10` rows: counter (4 words), key (2 words), expected output.
const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
    (
        [0, 0, 0, 0],
        [0, 0],
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    ),
    (
        [0xffffffff; 4],
        [0xffffffff; 2],
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ),
    (
        [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
        [0xa4093822, 0x299f31d0],
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ),
];

fn counter(c: [u32; 4]) -> PhiloxCounter {
    PhiloxCounter {
        block_lo: c[0],
        block_hi: c[1],
        stream: c[2],
        step: c[3],
    }
}

fn key(k: [u32; 2]) -> PhiloxKey {
    PhiloxKey { lo: k[0], hi: k[1] }
}

#[test]
fn philox_cpu_matches_random123_known_answers() {
    for (c, k, expected) in KAT {
        assert_eq!(
            cpu::philox_block(key(k), counter(c)),
            expected,
            "counter {c:08x?} key {k:08x?}"
        );
        // The bulk path (rayon chunks, rand_philox's lane-parallel fill) too.
        let mut out = DeviceBuffer::zeros(&Device::Cpu, 4).unwrap();
        philox::philox_blocks_u32(&Device::Cpu, key(k), counter(c), 1, &mut out).unwrap();
        assert_eq!(out.copy_dtoh().unwrap(), expected);
    }
}

#[test]
fn philox_kernel_matches_random123_known_answers_on_every_device() {
    for dev in test_devices("philox_kernel_matches_random123_known_answers_on_every_device") {
        for (c, k, expected) in KAT {
            let out = philox::philox_blocks(&dev, key(k), counter(c), 1).unwrap();
            assert_eq!(
                out.copy_dtoh().unwrap(),
                expected,
                "{dev}: counter {c:08x?}"
            );
        }
    }
}

/// The cases the equality tests sweep: several keys, bases with stream and
/// step set, and a base whose block index carries from word 0 into word 1.
fn cases() -> Vec<(PhiloxKey, PhiloxCounter)> {
    vec![
        (PhiloxKey::from_seed(0), PhiloxCounter::new(0, 0, 0)),
        (
            PhiloxKey::from_seed(0x0123_4567_89ab_cdef),
            PhiloxCounter::new(12_345, 7, 3),
        ),
        (
            key([0xa4093822, 0x299f31d0]),
            PhiloxCounter::new((1 << 32) - 1000, 0x0501, 0xffff_ffff),
        ),
        (
            PhiloxKey::from_seed(u64::MAX),
            PhiloxCounter::new(0x7_ffff_f000, 0xffff_ffff, 42),
        ),
    ]
}

const N_BLOCKS: u64 = 1 << 20;

#[test]
fn philox_blocks_are_bit_identical_on_cpu_and_every_kernel_device() {
    let devices = test_devices("philox_blocks_are_bit_identical_on_cpu_and_every_kernel_device");
    for (k, base) in cases() {
        let want = philox::philox_blocks(&Device::Cpu, k, base, N_BLOCKS)
            .unwrap()
            .copy_dtoh()
            .unwrap();
        // Spot-check the bulk CPU path against the single-block function,
        // including both sides of the word-0 carry.
        for i in [0u64, 999, 1000, 1001, N_BLOCKS - 1] {
            let c = PhiloxCounter::new(base.block() + i, base.stream, base.step);
            assert_eq!(
                want[4 * i as usize..4 * i as usize + 4],
                cpu::philox_block(k, c)
            );
        }
        for dev in &devices {
            let got = philox::philox_blocks(dev, k, base, N_BLOCKS)
                .unwrap()
                .copy_dtoh()
                .unwrap();
            if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
                panic!(
                    "{dev}: key {k:?} base {base:?}: word {i} is {:#010x}, CPU says {:#010x}",
                    got[i], want[i]
                );
            }
        }
    }
}

#[test]
fn philox_kernel_bits_do_not_depend_on_launch_shape() {
    let (k, base) = cases()[2];
    let n = 70_001u64; // not a multiple of any block size below
    let want = philox::philox_blocks(&Device::Cpu, k, base, n)
        .unwrap()
        .copy_dtoh()
        .unwrap();
    for dev in test_devices("philox_kernel_bits_do_not_depend_on_launch_shape") {
        for shape in [(32, 1), (1024, 7), (96, 65_535), (1, 3)] {
            let mut out = DeviceBuffer::zeros(&dev, 4 * n as usize).unwrap();
            philox::philox_blocks_u32_with_shape(&dev, k, base, n, &mut out, shape).unwrap();
            assert!(
                out.copy_dtoh().unwrap() == want,
                "{dev}: shape {shape:?} changed the bits"
            );
        }
    }
}

#[test]
fn philox_cpu_bits_do_not_depend_on_thread_count() {
    let (k, base) = cases()[1];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            philox::philox_blocks(&Device::Cpu, k, base, 100_003)
                .unwrap()
                .copy_dtoh()
                .unwrap()
        })
    };
    let one = run(1);
    for t in [2, 3, 8] {
        assert!(run(t) == one, "{t} threads changed the bits");
    }
}

#[test]
fn philox_refuses_a_range_that_would_wrap_the_block_index() {
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 8).unwrap();
    let base = PhiloxCounter::new(u64::MAX, 0, 0);
    let err = philox::philox_blocks_u32(&Device::Cpu, PhiloxKey::from_seed(1), base, 2, &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("64-bit block index"), "{err}");
}

#[test]
fn philox_refuses_an_output_buffer_of_the_wrong_length() {
    let mut out = DeviceBuffer::zeros(&Device::Cpu, 7).unwrap();
    let err = philox::philox_blocks_u32(
        &Device::Cpu,
        PhiloxKey::from_seed(1),
        PhiloxCounter::new(0, 0, 0),
        2,
        &mut out,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("has 7 elements, expected 8"),
        "{err}"
    );
}

#[test]
fn rng_state_draws_are_a_pure_function_of_seed_stream_step_and_index() {
    let mut state = RngState::new(42);
    let stream = Stream::new(StreamFamily::HiddenDropout, 1);
    let first = cpu::philox_block(state.key(), state.counter(stream, 5));
    // Saved and restored state gives the same draw; a new step or another
    // stream gives a different one.
    let restored = RngState::from_json(&state.to_json()).unwrap();
    assert_eq!(
        cpu::philox_block(restored.key(), restored.counter(stream, 5)),
        first
    );
    let other_stream = Stream::new(StreamFamily::HiddenDropout, 2);
    assert_ne!(
        cpu::philox_block(state.key(), state.counter(other_stream, 5)),
        first
    );
    state.advance().unwrap();
    assert_ne!(
        cpu::philox_block(state.key(), state.counter(stream, 5)),
        first
    );
}

/// The twin's bulk fill (16 blocks per SIMD step, in the widest build this
/// CPU has) writes the words `rand_philox`'s own stream writes, for any
/// length (partial groups and blocks) and across carries out of counter
/// word 0, 1 and 3 (the 128-bit counter wraps).
#[test]
fn philox_bulk_fill_equals_the_crate_stream_at_every_length_and_carry() {
    let key = [0x0123_4567, 0x89ab_cdef];
    let starts = [
        0u128,
        (1 << 32) - 5,
        (1 << 64) - 17,
        u128::MAX - 2,
        0x1234_5678_9abc_def0_1111_2222_ffff_fff0,
    ];
    for first in starts {
        for len in [0usize, 1, 3, 4, 5, 63, 64, 65, 127, 200, 1031] {
            let mut ours = vec![0u32; len];
            cpu::fill_words(key, first, &mut ours);
            let mut theirs = vec![0u32; len];
            rand_philox::Philox::new(key, first).fill_u32(&mut theirs);
            assert_eq!(ours, theirs, "first {first:#x}, {len} words");
        }
    }
}
