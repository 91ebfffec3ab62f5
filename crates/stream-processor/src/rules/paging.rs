//! Page tokens: what the earlier pages of a list showed, so the next page of the same ranking
//! holds none of it.
//!
//! A token is `version (1) ‖ scope (8) ‖ shown (4 each)`: the scope is a hash of what the list
//! is of (its route, user or item, and the parameters that shape it), so a token sent with
//! another list is refused; each shown item is the low 32 bits of the FNV-1a hash of its id —
//! ids, not the node's item numbers, so a token is good on every node. A collision (1 in 2^32
//! per pair) would hide one unseen item from a page; nothing worse.

use std::collections::HashSet;

use marquee_schemas::partition::fnv1a_64;

const VERSION: u8 = 1;
/// The most items a list can page through.
pub const MAX_SHOWN: usize = 500;

/// A decoded page token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageToken {
    pub scope: u64,
    /// The shown items' keys ([`item_key`]), in the order shown.
    pub shown: Vec<u32>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("is not a page token of this node's")]
    Malformed,
    #[error("belongs to another list (another user, item, route or parameters)")]
    OtherList,
}

/// The key of an item id in a page token.
pub fn item_key(item_id: &str) -> u32 {
    fnv1a_64(item_id.as_bytes()) as u32
}

/// The scope of a list: a hash of its parts, in order.
pub fn scope(parts: &[&str]) -> u64 {
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bytes.extend_from_slice(part.as_bytes());
    }
    fnv1a_64(&bytes)
}

impl PageToken {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(9 + 4 * self.shown.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.scope.to_be_bytes());
        for key in &self.shown {
            bytes.extend_from_slice(&key.to_be_bytes());
        }
        bytes
    }

    /// Decodes a token and checks that it is of the list `scope`.
    pub fn decode(bytes: &[u8], scope: u64) -> Result<PageToken, PageError> {
        let (&version, rest) = bytes.split_first().ok_or(PageError::Malformed)?;
        if version != VERSION || rest.len() < 8 || (rest.len() - 8) % 4 != 0 {
            return Err(PageError::Malformed);
        }
        let (scope_bytes, shown) = rest.split_at(8);
        let token_scope = u64::from_be_bytes(scope_bytes.try_into().expect("8 bytes"));
        if token_scope != scope {
            return Err(PageError::OtherList);
        }
        let shown: Vec<u32> = shown
            .chunks_exact(4)
            .map(|chunk| u32::from_be_bytes(chunk.try_into().expect("4 bytes")))
            .collect();
        if shown.len() > MAX_SHOWN {
            return Err(PageError::Malformed);
        }
        Ok(PageToken { scope, shown })
    }

    /// The keys shown, as a set.
    pub fn shown_set(&self) -> HashSet<u32> {
        self.shown.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_refuses_another_list() {
        let token = PageToken {
            scope: scope(&["recommendations", "u1"]),
            shown: vec![item_key("m1"), item_key("m2")],
        };
        let bytes = token.encode();
        assert_eq!(PageToken::decode(&bytes, token.scope).unwrap(), token);
        assert_eq!(
            PageToken::decode(&bytes, scope(&["recommendations", "u2"])),
            Err(PageError::OtherList)
        );
        assert_eq!(
            PageToken::decode(&bytes[..bytes.len() - 1], token.scope),
            Err(PageError::Malformed)
        );
        assert_eq!(
            PageToken::decode(&[], token.scope),
            Err(PageError::Malformed)
        );
        // Part boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(scope(&["ab", "c"]), scope(&["a", "bc"]));
    }
}
