//! What the `state_record` target checks (apart from `checks.rs`, because only it needs the
//! state crate, and so RocksDB, in the fuzz build); shared with `tests/fuzz_corpus.rs`.

use marquee_schemas::{decode_record, encode_record};
use marquee_vector_store::neighbours::{decode_pairs, encode_pairs};
use marquee_vector_store::{ItemState, Neighbours, SeenEntry, UserState};

/// A stored state value, read as each record type of the state: never a panic; what decodes
/// re-encodes to the same bytes or to a value that decodes the same.
pub fn state_record(data: &[u8]) {
    if let Ok(user) = decode_record::<UserState>(data) {
        let bytes = encode_record(&user).expect("a decoded user encodes");
        let again = decode_record::<UserState>(&bytes).expect("a re-encoded user decodes");
        assert_eq!(again.history.len(), user.history.len());
        assert_eq!(again.event_count, user.event_count);
    }
    if let Ok(item) = decode_record::<ItemState>(data) {
        let bytes = encode_record(&item).expect("a decoded item encodes");
        let again = decode_record::<ItemState>(&bytes).expect("a re-encoded item decodes");
        assert_eq!(again.item_id, item.item_id);
        assert_eq!(again.vector.len(), item.vector.len());
    }
    let _ = decode_record::<SeenEntry>(data);
    if let Some(list) = Neighbours::decode(data) {
        assert_eq!(list.encode(), data, "a decoded list encodes to its bytes");
    }
    if let Some(pairs) = decode_pairs(data) {
        assert_eq!(
            encode_pairs(&pairs),
            data,
            "decoded pairs encode to their bytes"
        );
    }
}
