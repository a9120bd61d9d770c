//! Key-range plans: splitting the key space into contiguous ranges (parallel workers, shards),
//! choosing a seeded subset of them (sampling). Pure: the boundaries come from the write model's
//! statistics, computed by the source.

use std::fmt;
use std::str::FromStr;

use crate::model::Key;
use crate::model::KeyRange;

/// `--shard K/N`: the K-th (1-based) of N contiguous key ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not K/N (e.g. 2/8: the second of eight shards)"))?;
        let index: u32 = k.trim().parse().map_err(|_| format!("{k:?} is not a shard number"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("{n:?} is not a shard count"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {index}/{count}: K must be between 1 and N"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// n-1 ascending boundaries make n contiguous ranges covering everything `within` covers:
/// `(after, b0], (b0, b1], …, (b_last, until]`. Repeated or out-of-range boundaries are dropped, so
/// fewer ranges may come back (never an empty-by-construction one).
pub fn ranges_from_bounds(within: &KeyRange, bounds: Vec<Key>) -> Vec<KeyRange> {
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut after = within.after.clone();
    for bound in bounds {
        let inside = within.contains(&bound) && after.as_ref().is_none_or(|a| bound > *a);
        let below_until = within.until.as_ref().is_none_or(|u| bound < *u);
        if inside && below_until {
            ranges.push(KeyRange {
                after: after.clone(),
                until: Some(bound.clone()),
            });
            after = Some(bound);
        }
    }
    ranges.push(KeyRange {
        after,
        until: within.until.clone(),
    });
    ranges
}

/// n-1 boundaries splitting the integers `lo..=hi` into n parts of equal width.
pub fn uniform_int_bounds(lo: i64, hi: i64, n: usize) -> Vec<Key> {
    let span = (hi as i128) - (lo as i128) + 1;
    (1..n)
        .map(|i| Key::Int((lo as i128 + span * i as i128 / n as i128 - 1) as i64))
        .collect()
}

/// n-1 boundaries from a sorted sample of keys: its quantiles.
pub fn sample_bounds(sorted: &[Key], n: usize) -> Vec<Key> {
    if sorted.is_empty() {
        return Vec::new();
    }
    (1..n)
        .map(|i| sorted[(sorted.len() * i / n).min(sorted.len() - 1)].clone())
        .collect()
}

/// A seeded choice of about `fraction` of `ranges` (at least one), kept in key order. The same seed
/// and ranges always give the same choice.
pub fn sample(ranges: Vec<KeyRange>, fraction: f64, seed: u64) -> Vec<KeyRange> {
    let wanted = ((ranges.len() as f64 * fraction).round() as usize).clamp(1, ranges.len().max(1));
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    let mut state = seed;
    // Fisher-Yates with splitmix64: no dependency, stable across platforms and releases.
    for i in (1..order.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    let mut chosen: Vec<usize> = order.into_iter().take(wanted).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| ranges[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Option<Key> {
        Some(Key::Int(i))
    }

    #[test]
    fn shards_parse_and_reject_nonsense() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_tile_the_range_without_gaps_or_overlaps() {
        let ranges = ranges_from_bounds(&KeyRange::all(), uniform_int_bounds(1, 100, 4));
        assert_eq!(ranges.len(), 4);
        assert_eq!((ranges[0].after.clone(), ranges[0].until.clone()), (None, int(25)));
        assert_eq!((ranges[1].after.clone(), ranges[1].until.clone()), (int(25), int(50)));
        assert_eq!((ranges[3].after.clone(), ranges[3].until.clone()), (int(75), None));
        for k in -5..120 {
            let holders = ranges.iter().filter(|r| r.contains(&Key::Int(k))).count();
            assert_eq!(holders, 1, "key {k}");
        }
        // Repeated boundaries (few distinct keys) collapse instead of making empty ranges.
        let within = KeyRange {
            after: int(0),
            until: int(10),
        };
        let ranges = ranges_from_bounds(&within, vec![Key::Int(5), Key::Int(5), Key::Int(10), Key::Int(-1)]);
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            ranges[1],
            KeyRange {
                after: int(5),
                until: int(10)
            }
        );
    }

    #[test]
    fn sampling_is_seeded_ordered_and_about_the_fraction() {
        let ranges = ranges_from_bounds(&KeyRange::all(), uniform_int_bounds(1, 1000, 100));
        let a = sample(ranges.clone(), 0.1, 42);
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(ranges.clone(), 0.1, 42));
        assert_ne!(a, sample(ranges.clone(), 0.1, 43));
        assert!(a.windows(2).all(|w| w[0].until < w[1].until || w[1].until.is_none()));
        assert_eq!(sample(ranges.clone(), 0.0001, 1).len(), 1);
        assert_eq!(sample(ranges, 1.0, 1).len(), 100);
    }

    #[test]
    fn sample_quantiles() {
        let keys: Vec<Key> = (0..10).map(Key::Int).collect();
        assert_eq!(sample_bounds(&keys, 2), [Key::Int(5)]);
        assert!(sample_bounds(&[], 4).is_empty());
    }
}
