//! Every record of the state round-trips through its codec, and no byte string makes a decoder
//! panic: a corrupt stored value is an error, never a crash.

use marquee_schemas::{decode_record, encode_record};
use marquee_vector_store::neighbours::{decode_pairs, encode_pairs};
use marquee_vector_store::{HistoryEntry, ItemState, Neighbours, SeenEntry, UserState};
use proptest::collection::vec;
use proptest::prelude::*;

fn finite() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("comparable", |value| !value.is_nan())
}

fn user_state() -> impl Strategy<Value = UserState> {
    (
        any::<u64>(),
        any::<i64>(),
        vec(finite(), 0..40),
        vec((any::<u32>(), finite(), any::<i64>()), 0..60),
    )
        .prop_map(|(event_count, last_timestamp, vector, history)| UserState {
            event_count,
            last_timestamp,
            vector,
            history: history
                .into_iter()
                .map(|(item, weight, timestamp)| HistoryEntry {
                    item,
                    weight,
                    timestamp,
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn user_states_round_trip(state in user_state()) {
        let bytes = encode_record(&state).unwrap();
        prop_assert_eq!(decode_record::<UserState>(&bytes).unwrap(), state);
    }

    #[test]
    fn item_states_round_trip(
        item_id in any::<String>(),
        vector in vec(finite(), 0..40),
        popularity in finite(),
        popularity_at in any::<i64>(),
        event_count in any::<u64>(),
        mass in finite(),
    ) {
        let state = ItemState { item_id, vector, popularity, popularity_at, event_count, mass };
        let bytes = encode_record(&state).unwrap();
        prop_assert_eq!(decode_record::<ItemState>(&bytes).unwrap(), state);
    }

    #[test]
    fn seen_entries_round_trip(interactions in any::<u32>(), last_weight in finite(), last_timestamp in any::<i64>()) {
        let entry = SeenEntry { interactions, last_weight, last_timestamp };
        let bytes = encode_record(&entry).unwrap();
        prop_assert_eq!(decode_record::<SeenEntry>(&bytes).unwrap(), entry);
    }

    #[test]
    fn co_occurrence_lists_round_trip(additions in vec((0u32..1000, 0.0f32..10.0), 0..400)) {
        let mut list = Neighbours::default();
        for (item, weight) in additions {
            list.add(item, weight);
        }
        let decoded = Neighbours::decode(&list.encode()).unwrap();
        prop_assert_eq!(decoded.entries(), list.entries());
    }

    #[test]
    fn pair_operands_round_trip(pairs in vec((any::<u32>(), finite()), 0..100)) {
        prop_assert_eq!(decode_pairs(&encode_pairs(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn no_byte_string_makes_a_state_decoder_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = decode_record::<UserState>(&bytes);
        let _ = decode_record::<ItemState>(&bytes);
        let _ = decode_record::<SeenEntry>(&bytes);
        let _ = Neighbours::decode(&bytes);
        let _ = decode_pairs(&bytes);
    }
}
