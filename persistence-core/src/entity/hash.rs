//! [`StableHasher`]: a hash that stays the same across Rust releases, for
//! values that outlive a process.

use std::hash::Hasher;

/// A hasher whose output is fixed (FNV-1a, 64 bit), unlike std's
/// `DefaultHasher`, whose algorithm may change between Rust releases. Used
/// for values that outlive a process: `schema_version` (part of shared cache
/// keys), index name suffixes and cursor fingerprints.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hasher_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        let h = |s: &str| {
            let mut h = StableHasher::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(h(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(h("foobar"), 0x8594_4171_f739_67e8);
    }
}
