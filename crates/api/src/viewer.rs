//! Viewer tokens: short-lived signed tokens bound to one `user_id`, for pages that must not
//! hold a key. A host site's backend mints one per signed-in viewer (`POST /v1/admin/tokens`,
//! or locally with the node's `viewer.key`), and the page sends it as its bearer key.
//!
//! A token is `mqv1.{user}.{expires}.{tag}`: the user id in base64url (no padding), the expiry
//! in seconds since the Unix epoch, and 64 hex digits of HMAC-SHA-256 under
//! `<data-dir>/viewer.key` over `mqv1.{user}.{expires}`. It allows exactly that user's lists and
//! assignments, their summary, the catalogue's reads (items, similar, trending, search), and
//! `POST /v1/events` whose every event is that user's ([`VIEWER_ROUTES`]); anything else is 403.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

/// What every viewer token starts with.
pub const TOKEN_PREFIX: &str = "mqv1.";
/// The longest lifetime `POST /v1/admin/tokens` grants: a day.
pub const MAX_TOKEN_SECS: u64 = 24 * 60 * 60;

/// The routes a viewer token opens, and whether the route's `{user_id}` must be the token's.
pub const VIEWER_ROUTES: [(&str, &str, bool); 9] = [
    ("GET", "/v1/users/{user_id}/recommendations", true),
    ("GET", "/v1/users/{user_id}/assignments", true),
    ("GET", "/v1/users/{user_id}", true),
    ("GET", "/v1/items/{item_id}", false),
    ("GET", "/v1/items/{item_id}/similar", false),
    ("GET", "/v1/trending", false),
    ("GET", "/v1/search", false),
    ("GET", "/v1/search/suggest", false),
    ("POST", "/v1/events", false),
];

/// The user a request's viewer token is bound to (a request extension, for the routes that
/// check their body: `POST /v1/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer(pub String);

fn tag(key: &[u8; 32], signed: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A token for `user_id` that expires at `expires_secs` (seconds since the Unix epoch).
pub fn mint(key: &[u8; 32], user_id: &str, expires_secs: u64) -> String {
    let signed = format!(
        "{TOKEN_PREFIX}{}.{expires_secs}",
        URL_SAFE_NO_PAD.encode(user_id)
    );
    let tag = tag(key, &signed);
    format!("{signed}.{tag}")
}

/// The user of a valid, unexpired token; a 401 that says what is wrong otherwise.
pub fn verify(key: &[u8; 32], token: &str, now_secs: u64) -> Result<String, ApiError> {
    let unauthorized = |message: &str| ApiError::Unauthorized {
        message: format!("authorization: {message}"),
    };
    let (signed, found) = token
        .rsplit_once('.')
        .ok_or_else(|| unauthorized("a malformed viewer token"))?;
    let mut parts = signed
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| unauthorized("a malformed viewer token"))?
        .split('.');
    let (Some(user), Some(expires), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unauthorized("a malformed viewer token"));
    };
    let expected = tag(key, signed);
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), found.as_bytes()).into();
    if !same {
        return Err(unauthorized(
            "the viewer token's signature does not match (tampered, or signed with another key)",
        ));
    }
    let expires: u64 = expires
        .parse()
        .map_err(|_| unauthorized("a malformed viewer token"))?;
    if expires <= now_secs {
        return Err(unauthorized(&format!(
            "the viewer token expired {} s ago; ask the site for a new one",
            now_secs - expires
        )));
    }
    let user = URL_SAFE_NO_PAD
        .decode(user)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("a malformed viewer token"))?;
    Ok(user)
}

/// Whether a viewer token for `viewer` opens `method route`, the request's `{user_id}` being
/// `path_user` (percent-decoded) and its `user_id` parameter `query_user`; a 403 naming what
/// the token allows otherwise.
pub fn permits(
    viewer: &str,
    method: &str,
    route: &str,
    path_user: Option<&str>,
    query_user: Option<&str>,
) -> Result<(), ApiError> {
    let forbidden = |message: String| ApiError::Forbidden {
        message: format!("authorization: {message}"),
    };
    let Some((_, _, own)) = VIEWER_ROUTES
        .iter()
        .find(|(allowed_method, allowed_route, _)| {
            *allowed_method == method && *allowed_route == route
        })
    else {
        return Err(forbidden(format!(
            "a viewer token allows the viewer's own lists, summary and events and the \
             catalogue's reads, not {method} {route}"
        )));
    };
    if *own && path_user != Some(viewer) {
        return Err(forbidden(format!(
            "this viewer token is for {viewer:?}, not {:?}",
            path_user.unwrap_or("")
        )));
    }
    if let Some(other) = query_user.filter(|user| *user != viewer) {
        return Err(forbidden(format!(
            "user_id: this viewer token is for {viewer:?}, not {other:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [5; 32];

    #[test]
    fn a_token_holds_its_user_until_it_expires() {
        let token = mint(&KEY, "viewer é/1", 2_000);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(verify(&KEY, &token, 1_999).unwrap(), "viewer é/1");
        let expired = verify(&KEY, &token, 2_000).unwrap_err().to_string();
        assert!(expired.contains("expired 0 s ago"), "{expired}");
        let other_key = verify(&[6; 32], &token, 1_000).unwrap_err().to_string();
        assert!(other_key.contains("signature"), "{other_key}");
    }

    #[test]
    fn the_format_is_the_one_docs_operations_gives_hosts() {
        // Computed by the Python of docs/OPERATIONS.md ("Viewer tokens") with the key [5; 32].
        assert_eq!(
            mint(&KEY, "viewer é/1", 2_000),
            "mqv1.dmlld2VyIMOpLzE.2000.\
             45f0097295476dc72766a692e26c7d05338921b426fe2edc2d2392ccb0292a57"
        );
    }

    #[test]
    fn a_changed_user_or_expiry_breaks_the_signature() {
        let token = mint(&KEY, "alice", 2_000);
        let parts: Vec<&str> = token.split('.').collect();
        let as_bob = format!(
            "{}.{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode("bob"),
            parts[2],
            parts[3]
        );
        assert!(verify(&KEY, &as_bob, 1_000).is_err());
        let later = format!("{}.{}.9999999999.{}", parts[0], parts[1], parts[3]);
        assert!(verify(&KEY, &later, 1_000).is_err());
        for junk in ["mqv1.", "mqv1.a.b", "mqv1.a.1.b.c", "nope"] {
            assert!(verify(&KEY, junk, 1_000).is_err(), "{junk}");
        }
    }

    #[test]
    fn a_token_opens_its_own_user_and_the_catalogue_only() {
        let own = "/v1/users/{user_id}/recommendations";
        assert!(permits("alice", "GET", own, Some("alice"), None).is_ok());
        assert!(permits("alice", "GET", own, Some("bob"), None).is_err());
        assert!(permits("alice", "GET", "/v1/search", None, Some("alice")).is_ok());
        assert!(permits("alice", "GET", "/v1/search", None, Some("bob")).is_err());
        assert!(permits("alice", "GET", "/v1/trending", None, None).is_ok());
        assert!(
            permits(
                "alice",
                "DELETE",
                "/v1/users/{user_id}",
                Some("alice"),
                None
            )
            .is_err()
        );
        assert!(
            permits(
                "alice",
                "GET",
                "/v1/users/{user_id}/export",
                Some("alice"),
                None
            )
            .is_err()
        );
        assert!(permits("alice", "GET", "/v1/admin/processor", None, None).is_err());
    }
}
