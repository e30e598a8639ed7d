//! Bounded capture of a command's output: the last `limit` bytes are kept, the rest is
//! counted, so `yes | head -c 1G` costs a worker `limit` bytes of memory, not a gigabyte.
//! Pure.

use std::collections::VecDeque;

/// The tail of a stream, at most `limit` bytes, and how many bytes went before it.
#[derive(Debug, Clone)]
pub struct Tail {
    limit: usize,
    kept: VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: VecDeque::with_capacity(limit.min(64 * 1024)),
            dropped: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        // Only the last `limit` bytes of this chunk can survive.
        let skip = bytes.len().saturating_sub(self.limit);
        self.dropped += skip as u64;
        self.kept.extend(&bytes[skip..]);
        let excess = self.kept.len().saturating_sub(self.limit);
        if excess > 0 {
            self.kept.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Keeps only the last `limit` bytes from now on (dropping what is over it).
    pub fn shrink_to(&mut self, limit: usize) {
        self.limit = limit;
        self.push(&[]);
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept bytes as text (invalid UTF-8 replaced by U+FFFD; a character cut by the bound
    /// at the start shows as one replacement character).
    pub fn text(&self) -> String {
        let (a, b) = self.kept.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_tail_and_counts_what_it_dropped() {
        let mut t = Tail::new(5);
        t.push(b"hello ");
        t.push(b"world");
        assert_eq!(t.text(), "world");
        assert_eq!(t.dropped(), 6);
        t.shrink_to(2);
        assert_eq!((t.text().as_str(), t.dropped()), ("ld", 9));
    }

    proptest! {
        #[test]
        fn never_holds_more_than_its_limit_and_loses_no_count(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
            limit in 0usize..300,
        ) {
            let mut t = Tail::new(limit);
            let mut all = Vec::new();
            for c in &chunks {
                t.push(c);
                all.extend_from_slice(c);
                prop_assert!(t.len() <= limit);
            }
            prop_assert_eq!(t.len() as u64 + t.dropped(), all.len() as u64);
            let kept: Vec<u8> = t.kept.iter().copied().collect();
            prop_assert_eq!(&kept[..], &all[all.len() - t.len()..]);
        }
    }
}
