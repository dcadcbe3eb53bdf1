//! Dense numbers for store ids.
//!
//! Interning runs once per input row (1.8 M times for a full poll file), so it avoids the
//! two costs of a plain `HashMap<Box<str>, u32>`: SipHash, and a pointer chase to a heap
//! key on every hit. Ids of up to 39 bytes (19-digit integers, UUIDs) sit inline in the
//! table; a longer one is kept on the heap.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

const INLINE: usize = 39;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(id: &[u8]) -> Self {
        if id.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..id.len()].copy_from_slice(id);
            Key::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(id.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(bytes) => bytes,
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

/// The multiply-rotate hash of rustc (FxHash), eight bytes at a time: ample for a table
/// whose keys come from our own input files.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("chunks of 8")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(tail) ^ bytes.len() as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Store ids numbered 0, 1, 2, … in the order first seen.
#[derive(Clone, Debug, Default)]
pub struct StoreIds {
    ids: Vec<Box<str>>,
    index: HashMap<Key, u32, BuildHasherDefault<FxHasher>>,
}

impl StoreIds {
    /// The number of `id`, given it one if it is new.
    pub fn intern(&mut self, id: &str) -> u32 {
        let next = self.ids.len() as u32;
        let n = *self.index.entry(Key::new(id.as_bytes())).or_insert(next);
        if n == next {
            self.ids.push(id.into());
        }
        n
    }

    #[cfg(test)]
    fn get(&self, id: &str) -> Option<u32> {
        self.index.get(&Key::new(id.as_bytes())).copied()
    }

    pub fn id(&self, n: u32) -> &str {
        &self.ids[n as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbered_in_the_order_first_seen() {
        let mut ids = StoreIds::default();
        let long = "x".repeat(100);
        assert_eq!(ids.intern("8419537941919820732"), 0);
        assert_eq!(ids.intern("02d97274-24fb-49ce-8b71-01df16ffc595"), 1);
        assert_eq!(ids.intern(&long), 2);
        assert_eq!(ids.intern("8419537941919820732"), 0);
        assert_eq!(ids.intern(&long), 2);
        assert_eq!(ids.intern(""), 3);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.id(1), "02d97274-24fb-49ce-8b71-01df16ffc595");
        assert_eq!(ids.get(&long), Some(2));
        assert_eq!(ids.get("841953794191982073"), None);
    }

    #[test]
    fn ids_that_differ_only_in_padding_or_length_stay_apart() {
        let mut ids = StoreIds::default();
        let a = ids.intern("12345678");
        let b = ids.intern("12345678\0");
        let c = ids.intern("1234567");
        assert_eq!(ids.len(), 3);
        assert!(a != b && b != c);
    }
}
