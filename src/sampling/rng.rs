//! Random streams for sampling (contracts P5, P6).
//!
//! Every row draws one `f64` uniform from its own ChaCha20 stream (`rand_chacha`): a 256-bit
//! key and a 64-bit stream number select the stream, and the row takes the first 64-bit word
//! of it. The key and stream number depend only on the seed, the row index and (for
//! [`Sampler`](super::Sampler)) the call index, never on threads or on how rows are batched:
//!
//! | call                               | key                              | stream |
//! |------------------------------------|----------------------------------|--------|
//! | `Seed::Fixed(s)`, row `i`          | `key(s, 0, "sample")`            | `i`    |
//! | `Seed::PerRow(ss)`, row `i`        | `key(ss[i], 0, "sample")`        | `0`    |
//! | `Sampler` with seed `s`, call `n`  | `key(s, n, "sampler")`           | `i`    |
//! | `Seed::Entropy`                    | 32 bytes from the OS             | `i`    |
//! | `verify_draft`, `Seed::Fixed(s)`   | `key(s, 0, "verify")`            | `i`    |
//! | `verify_draft`, `Seed::PerRow(ss)` | `key(ss[i], 0, "verify")`        | `0`    |
//!
//! `key(s, n, tag)` is the little-endian bytes of `s`, then of `n`, then a 16-byte tag. So a
//! one-row call with `Seed::PerRow(vec![s])` draws what row 0 of `Seed::Fixed(s)` draws.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;

use super::chacha_lanes::{first_words, LANES};
use crate::error::Result;

/// Where a sampling call's randomness comes from (contract P5).
///
/// ```
/// use logitkit::Seed;
/// let s: Seed = 42.into();
/// assert_eq!(s, Seed::Fixed(42));
/// let per_row: Seed = vec![1, 2, 3].into();
/// assert!(matches!(per_row, Seed::PerRow(_)));
/// assert_eq!(Seed::default(), Seed::Entropy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seed {
    /// Fresh entropy from the operating system for every call (Python's `seed=None`).
    #[default]
    Entropy,
    /// Reproducible: row `i` draws from a stream determined by `(seed, i)`.
    Fixed(u64),
    /// Reproducible per row: row `i` draws from a stream determined by `seeds[i]` alone, so its
    /// token does not depend on the batch it is in.
    PerRow(Vec<u64>),
}

impl From<u64> for Seed {
    fn from(s: u64) -> Self {
        Seed::Fixed(s)
    }
}

impl From<Option<u64>> for Seed {
    fn from(s: Option<u64>) -> Self {
        s.map_or(Seed::Entropy, Seed::Fixed)
    }
}

impl From<Vec<u64>> for Seed {
    fn from(s: Vec<u64>) -> Self {
        Seed::PerRow(s)
    }
}

impl From<&[u64]> for Seed {
    fn from(s: &[u64]) -> Self {
        Seed::PerRow(s.to_vec())
    }
}

const TAG_SAMPLE: &[u8; 16] = b"logitkit/sample\0";
const TAG_SAMPLER: &[u8; 16] = b"logitkit/sampler";
const TAG_VERIFY: &[u8; 16] = b"logitkit/verify\0";

fn key(seed: u64, n: u64, tag: &[u8; 16]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..16].copy_from_slice(&n.to_le_bytes());
    k[16..].copy_from_slice(tag);
    k
}

/// 32 bytes from the operating system.
///
/// # Panics
/// If the operating system's random source fails (it does not on supported platforms).
pub(crate) fn os_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// The per-row streams of one call, resolved from its seed.
#[derive(Debug, Clone)]
pub(crate) enum Streams<'a> {
    /// One key, stream = row index.
    Keyed([u8; 32]),
    /// One key per row (from its seed), stream 0.
    PerRow(&'a [u64]),
    /// One key per row (from its seed and a tag other than `sample`'s), stream 0.
    PerRowTagged(&'a [u64], &'static [u8; 16]),
}

impl Streams<'_> {
    /// The streams of a `sample` call with `seed` (draws OS entropy for [`Seed::Entropy`]).
    pub(crate) fn for_sample(seed: &Seed) -> Streams<'_> {
        match seed {
            Seed::Entropy => Streams::Keyed(os_bytes()),
            Seed::Fixed(s) => Streams::Keyed(key(*s, 0, TAG_SAMPLE)),
            Seed::PerRow(ss) => Streams::PerRow(ss),
        }
    }

    /// The streams of a `verify_draft` call with `seed` (contract V4): as
    /// [`Streams::for_sample`] with the tag `"logitkit/verify"`, so that a draft drawn by
    /// `sample` with the same seed is not verified with the uniforms that drew it.
    pub(crate) fn for_verify(seed: &Seed) -> Streams<'_> {
        match seed {
            Seed::Entropy => Streams::Keyed(os_bytes()),
            Seed::Fixed(s) => Streams::Keyed(key(*s, 0, TAG_VERIFY)),
            Seed::PerRow(ss) => Streams::PerRowTagged(ss, TAG_VERIFY),
        }
    }

    /// The streams of call `n` of a [`Sampler`](super::Sampler) with seed `s`.
    pub(crate) fn for_sampler(s: u64, n: u64) -> Streams<'static> {
        Streams::Keyed(key(s, n, TAG_SAMPLER))
    }

    /// Row `row`'s key and stream number.
    fn key_of(&self, row: usize) -> ([u8; 32], u64) {
        match self {
            Streams::Keyed(k) => (*k, row as u64),
            Streams::PerRow(ss) => (key(ss[row], 0, TAG_SAMPLE), 0),
            Streams::PerRowTagged(ss, tag) => (key(ss[row], 0, tag), 0),
        }
    }

    /// Row `row`'s stream (its ChaCha20 state is set up when the first uniform is drawn: a
    /// greedy row draws none).
    pub(crate) fn row(&self, row: usize) -> RowRng<'static> {
        let (key, stream) = self.key_of(row);
        RowRng {
            key,
            stream,
            first: None,
            words: 0,
            rng: None,
        }
    }

    /// Row `row`'s first uniform (see [`RowRng::uniform`]).
    #[cfg(test)]
    pub(crate) fn uniform(&self, row: usize) -> f64 {
        self.row(row).uniform()
    }
}

/// The first words of the streams of a call's `rows` rows, computed [`LANES`] rows at a time
/// when the first of them draws (a row drawing one word is most rows; their streams are
/// independent, so the lanes of a vector register take one each).
pub(crate) struct FirstWords<'s> {
    streams: &'s Streams<'s>,
    rows: usize,
    groups: Vec<OnceLock<[u64; LANES]>>,
}

impl<'s> FirstWords<'s> {
    /// Room for the first words of `rows` rows of `streams` (contract R1 when refused).
    pub(crate) fn new(streams: &'s Streams<'s>, rows: usize) -> Result<Self> {
        let groups = crate::scratch::filled(
            rows.div_ceil(LANES),
            OnceLock::new(),
            "the rows' first random words",
        )?;
        Ok(FirstWords {
            streams,
            rows,
            groups,
        })
    }

    /// Row `row`'s stream, as [`Streams::row`], its first word taken from here (past the
    /// `rows` this was made for, set up as `Streams::row` sets it up).
    pub(crate) fn row(&self, row: usize) -> RowRng<'_> {
        // Built in place: a copy of the other's would move the generator's room (a few
        // hundred bytes) for every row.
        let (key, stream) = self.streams.key_of(row);
        RowRng {
            key,
            stream,
            first: (row < self.rows).then_some((self, row)),
            words: 0,
            rng: None,
        }
    }

    fn word(&self, row: usize) -> u64 {
        let group = row / LANES;
        self.groups[group].get_or_init(|| {
            let mut keys = [[0u32; 8]; LANES];
            let mut streams = [0u64; LANES];
            for (l, (k, s)) in keys.iter_mut().zip(&mut streams).enumerate() {
                // Lanes past the last row repeat it.
                let (key, stream) = self.streams.key_of((group * LANES + l).min(self.rows - 1));
                for (w, b) in k.iter_mut().zip(key.chunks_exact(4)) {
                    *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                *s = stream;
            }
            first_words(&keys, &streams)
        })[row % LANES]
    }
}

/// The uniforms of one row, in stream order; the generator is set up at the first draw that
/// [`FirstWords`] does not answer.
pub(crate) struct RowRng<'s> {
    key: [u8; 32],
    stream: u64,
    first: Option<(&'s FirstWords<'s>, usize)>,
    /// Words of the stream already drawn when `rng` is set up.
    words: u8,
    rng: Option<ChaCha20Rng>,
}

impl RowRng<'_> {
    /// The next uniform in `[0, 1)`: the top 53 bits of the stream's next 64-bit word.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn next_u64(&mut self) -> u64 {
        if let Some((firsts, row)) = self.first.take() {
            self.words = 2;
            return firsts.word(row);
        }
        let (key, stream, words) = (self.key, self.stream, self.words);
        self.rng
            .get_or_insert_with(|| {
                let mut r = ChaCha20Rng::from_seed(key);
                r.set_stream(stream);
                r.set_word_pos(words.into());
                r
            })
            .next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p5_per_row_seed_matches_scalar_seed_row_zero() {
        let a = Streams::for_sample(&Seed::Fixed(7)).uniform(0);
        let seeds = [7u64];
        let b = Streams::PerRow(&seeds).uniform(0);
        assert_eq!(a, b);
    }

    #[test]
    fn p5_rows_get_distinct_streams() {
        let s = Streams::for_sample(&Seed::Fixed(1));
        let u: Vec<f64> = (0..64).map(|i| s.uniform(i)).collect();
        for i in 0..u.len() {
            assert!((0.0..1.0).contains(&u[i]));
            for j in 0..i {
                assert_ne!(u[i], u[j]);
            }
        }
    }

    /// `rand_chacha`'s generator for row `row` of `streams`, set up at once.
    fn reference(streams: &Streams<'_>, row: usize) -> ChaCha20Rng {
        let (k, s) = streams.key_of(row);
        let mut r = ChaCha20Rng::from_seed(k);
        r.set_stream(s);
        r
    }

    #[test]
    fn p5_rows_draw_rand_chachas_streams() {
        let seeds: Vec<u64> = (0..5u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let calls = [
            Streams::for_sample(&Seed::Fixed(7)),
            Streams::for_sampler(3, 1 << 40),
            Streams::PerRow(&seeds),
            Streams::PerRowTagged(&seeds, TAG_VERIFY),
        ];
        for streams in &calls {
            // Five rows: a group of LANES with three lanes past the end.
            let firsts = FirstWords::new(streams, 5).unwrap();
            let none = FirstWords::new(streams, 0).unwrap();
            for row in [0, 1, 4] {
                for (how, mut got) in [
                    ("row", streams.row(row)),
                    ("first", firsts.row(row)),
                    ("past the rows", none.row(row)),
                ] {
                    let mut want = reference(streams, row);
                    // Into the generator's second refill.
                    for i in 0..70 {
                        assert_eq!(
                            got.next_u64(),
                            want.next_u64(),
                            "{streams:?} {how} row {row} word {i}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn p6_sampler_calls_get_distinct_streams() {
        let a = Streams::for_sampler(3, 0).uniform(0);
        let b = Streams::for_sampler(3, 1).uniform(0);
        let c = Streams::for_sample(&Seed::Fixed(3)).uniform(0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, Streams::for_sampler(3, 0).uniform(0));
    }
}
