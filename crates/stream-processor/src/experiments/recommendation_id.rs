//! Recommendation ids: a list's name that says when it was served and to whom, without a
//! table. `r` + 12 hex digits of the serving time (ms) + 8 of a random nonce + 16 of an
//! HMAC-SHA-256 tag over both and the user id, keyed by `<data-dir>/recommendation.key`. An
//! id that does not parse, or whose tag does not match the event's user (made up, mistyped,
//! another user's list), is unknown: its events are accepted and counted as unattributed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The length of an id: `r` and 36 hex digits.
pub const ID_LEN: usize = 37;

fn tag(key: &[u8; 32], served_ms: u64, nonce: u32, user_id: &str) -> u64 {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"marquee-recommendation\0");
    mac.update(&served_ms.to_be_bytes());
    mac.update(&nonce.to_be_bytes());
    mac.update(user_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A new id for a list served to `user_id` at `served_ms`.
pub fn mint(key: &[u8; 32], user_id: &str, served_ms: i64, nonce: u32) -> String {
    let served = served_ms.clamp(0, 0xffff_ffff_ffff) as u64;
    format!(
        "r{served:012x}{nonce:08x}{:016x}",
        tag(key, served, nonce, user_id)
    )
}

/// When the list `id` was served, if `id` is one this key minted for `user_id`.
pub fn verify(key: &[u8; 32], user_id: &str, id: &str) -> Option<i64> {
    if id.len() != ID_LEN || !id.starts_with('r') {
        return None;
    }
    let hex = &id[1..];
    let served = u64::from_str_radix(hex.get(..12)?, 16).ok()?;
    let nonce = u32::from_str_radix(hex.get(12..20)?, 16).ok()?;
    let found = u64::from_str_radix(hex.get(20..36)?, 16).ok()?;
    // Compared in constant time: the tag is what makes an id unforgeable.
    let expected = tag(key, served, nonce, user_id);
    let same: bool =
        subtle::ConstantTimeEq::ct_eq(&expected.to_be_bytes()[..], &found.to_be_bytes()[..]).into();
    same.then_some(served as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_verifies_for_its_user_only() {
        let key = [7u8; 32];
        let id = mint(&key, "u1", 1_700_000_000_000, 42);
        assert_eq!(id.len(), ID_LEN);
        assert_eq!(verify(&key, "u1", &id), Some(1_700_000_000_000));
        assert_eq!(verify(&key, "u2", &id), None);
        assert_eq!(verify(&[8u8; 32], "u1", &id), None);
        let mut tampered = id.clone();
        tampered.replace_range(5..6, if &id[5..6] == "0" { "1" } else { "0" });
        assert_eq!(verify(&key, "u1", &tampered), None);
        for junk in ["", "r", "rec-1", &"r".repeat(ID_LEN), "réééééééééééééééééé"]
        {
            assert_eq!(verify(&key, "u1", junk), None, "{junk}");
        }
    }
}
