//! Encryption at rest: the [`Cipher`] the log and the state seal their values with, and the
//! deterministic sealing of user ids where they are part of a key.
//!
//! One 32-byte master key (from a file or an environment secret kept outside the data
//! directory, [`Cipher::from_hex`]) derives two AES-256-GCM-SIV keys with HMAC-SHA-256, one
//! per use:
//!
//! - **Values** ([`Cipher::seal`]): a 96-bit nonce ‖ ciphertext ‖ 16-byte tag, 28 bytes over
//!   the plain record. The nonce is 32 random bits drawn when the cipher is made and a 64-bit
//!   counter that starts at a random value: unique without a system call per value. GCM-SIV is
//!   chosen over GCM because a state is written billions of times over its life (every merge
//!   and compaction output is sealed anew) by processes that each start a counter: a repeated
//!   nonce under GCM would leak the authentication key, under GCM-SIV it only shows that two
//!   values were equal.
//! - **Ids in keys** ([`Cipher::seal_id`]): sealed under a fixed nonce, which GCM-SIV allows as
//!   deterministic encryption: the same id always seals to the same bytes (RocksDB finds a
//!   user's rows by key), different ids to different bytes, and a sealed key still opens back
//!   to its id ([`Cipher::open_id`]) for the passes over every user. What an attacker with the
//!   files learns is how many rows one (unknown) user has, never who.
//!
//! A value that does not open (another key, a flipped bit) is an error, never a panic and
//! never garbage: GCM-SIV authenticates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Bytes a sealed value is longer than its plain text: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Bytes a sealed id is longer than the id: the tag.
pub const TAG_LEN: usize = 16;
/// The nonce of every sealed id (see the module docs).
const ID_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

/// What went wrong reading a key or opening a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error(
        "an encryption key is 64 hexadecimal digits (32 bytes); this one has {found} characters"
    )]
    KeyLength { found: usize },
    #[error("an encryption key is 64 hexadecimal digits; found '{found}'")]
    KeyDigit { found: char },
    #[error("a sealed value does not open with this encryption key (another key, or corrupt)")]
    Open,
    #[error("the system's random generator failed")]
    Random,
}

/// The keys of encryption at rest. Cheap to clone (shared).
#[derive(Clone)]
pub struct Cipher {
    inner: Arc<Keys>,
}

struct Keys {
    values: LessSafeKey,
    ids: LessSafeKey,
    /// The first 4 bytes of every value nonce of this cipher.
    nonce_prefix: [u8; 4],
    /// The last 8 bytes of the next value nonce.
    nonce_counter: AtomicU64,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(AES-256-GCM-SIV)")
    }
}

fn derive(master: &hmac::Key, label: &str) -> [u8; 32] {
    let tag = hmac::sign(master, label.as_bytes());
    tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, bytes).expect("32 bytes is AES-256's size"))
}

impl Cipher {
    /// The cipher of a 32-byte master key.
    pub fn new(master: &[u8; 32]) -> Cipher {
        let master = hmac::Key::new(hmac::HMAC_SHA256, master);
        let mut start = [0u8; 12];
        // The system generator fails only on a broken kernel; the nonces then repeat across
        // processes, which GCM-SIV tolerates (equal values show as equal), so that is the
        // fallback rather than a panic.
        let _ = SystemRandom::new().fill(&mut start);
        let (prefix, counter) = start.split_at(4);
        Cipher {
            inner: Arc::new(Keys {
                values: aead_key(&derive(&master, "marquee values v1")),
                ids: aead_key(&derive(&master, "marquee ids v1")),
                nonce_prefix: prefix.try_into().expect("4 bytes"),
                nonce_counter: AtomicU64::new(u64::from_le_bytes(
                    counter.try_into().expect("8 bytes"),
                )),
            }),
        }
    }

    /// The cipher of a key written as 64 hexadecimal digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Cipher, CipherError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(CipherError::KeyLength {
                found: text.chars().count(),
            });
        }
        let mut master = [0u8; 32];
        let digits: Vec<char> = text.chars().collect();
        for (byte, pair) in master.iter_mut().zip(digits.chunks(2)) {
            let mut value = 0u8;
            for digit in pair {
                let nibble = digit
                    .to_digit(16)
                    .ok_or(CipherError::KeyDigit { found: *digit })?;
                value = value * 16 + nibble as u8;
            }
            *byte = value;
        }
        Ok(Cipher::new(&master))
    }

    /// A new random key as 64 hexadecimal digits (`marquee encryption-key`).
    pub fn generate_hex() -> Result<String, CipherError> {
        let mut master = [0u8; 32];
        SystemRandom::new()
            .fill(&mut master)
            .map_err(|_| CipherError::Random)?;
        Ok(master.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// `plain` sealed under a fresh nonce: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let counter = self.inner.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.inner.nonce_prefix);
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        let mut sealed = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plain);
        seal_in(&self.inner.values, nonce, &mut sealed, NONCE_LEN);
        sealed
    }

    /// Opens a value [`Cipher::seal`] made.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CipherError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CipherError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Open)?;
        open_in(&self.inner.values, nonce, body.to_vec())
    }

    /// `id` sealed deterministically (the same id, the same bytes): ciphertext ‖ tag, for keys.
    pub fn seal_id(&self, id: &str) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(id.len() + TAG_LEN);
        sealed.extend_from_slice(id.as_bytes());
        seal_in(&self.inner.ids, ID_NONCE, &mut sealed, 0);
        sealed
    }

    /// The id of a key part [`Cipher::seal_id`] made.
    pub fn open_id(&self, sealed: &[u8]) -> Result<String, CipherError> {
        let nonce = Nonce::assume_unique_for_key(ID_NONCE);
        let plain = open_in(&self.inner.ids, nonce, sealed.to_vec())?;
        String::from_utf8(plain).map_err(|_| CipherError::Open)
    }
}

/// Seals `buffer[from..]` in place and appends the tag.
fn seal_in(key: &LessSafeKey, nonce: [u8; NONCE_LEN], buffer: &mut Vec<u8>, from: usize) {
    let (_, body) = buffer.split_at_mut(from);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), body)
        .expect("sealing a record never exceeds GCM-SIV's length limit");
    buffer.extend_from_slice(tag.as_ref());
}

/// Opens `body` (ciphertext ‖ tag) in place: the plain text.
fn open_in(key: &LessSafeKey, nonce: Nonce, mut body: Vec<u8>) -> Result<Vec<u8>, CipherError> {
    let plain_len = key
        .open_in_place(nonce, Aad::empty(), &mut body)
        .map_err(|_| CipherError::Open)?
        .len();
    body.truncate(plain_len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_value_opens_to_itself_and_never_shows_its_text() {
        let cipher = cipher();
        let plain = b"Toy Story (1995) watched by alice";
        let sealed = cipher.seal(plain);
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        assert!(!sealed.windows(5).any(|window| window == b"alice"));
        assert_eq!(cipher.open(&sealed).unwrap(), plain);
        // A fresh nonce each time: equal values do not look equal.
        assert_ne!(cipher.seal(plain), sealed);
    }

    #[test]
    fn another_key_or_a_flipped_bit_is_an_error() {
        let sealed = cipher().seal(b"record");
        let other = Cipher::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.open(&sealed), Err(CipherError::Open));
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(cipher().open(&flipped), Err(CipherError::Open));
        assert_eq!(cipher().open(&sealed[..10]), Err(CipherError::Open));
    }

    #[test]
    fn an_id_seals_the_same_each_time_and_opens_back() {
        let cipher = cipher();
        let sealed = cipher.seal_id("user-42");
        assert_eq!(sealed.len(), "user-42".len() + TAG_LEN);
        assert_eq!(cipher.seal_id("user-42"), sealed);
        assert_ne!(cipher.seal_id("user-43"), sealed);
        assert_eq!(cipher.open_id(&sealed).unwrap(), "user-42");
        assert!(
            cipher.open(&sealed).is_err(),
            "ids and values have their own keys"
        );
    }

    #[test]
    fn a_bad_key_names_what_is_wrong() {
        assert_eq!(
            Cipher::from_hex("abc").unwrap_err(),
            CipherError::KeyLength { found: 3 }
        );
        let error = Cipher::from_hex(&format!("{}zz", "a".repeat(62))).unwrap_err();
        assert_eq!(error, CipherError::KeyDigit { found: 'z' });
        let generated = Cipher::generate_hex().unwrap();
        assert_eq!(generated.len(), 64);
        assert!(Cipher::from_hex(&format!("  {generated}\n")).is_ok());
    }
}
