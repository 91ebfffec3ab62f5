use std::sync::Arc;

use arroyo_udf_plugin::arrow::array::{Array, Int64Array, StringArray};
use marquee_partition::{__run, marquee_partition};
use marquee_schemas::partition::fnv1a_64;
use marquee_schemas::partition_for_user;

#[test]
fn places_users_as_the_node_does() {
    // The published FNV-1a vectors, through the UDF's own hash (partition count 2^63 keeps
    // the low 63 bits).
    let high = i64::MAX;
    assert_eq!(
        marquee_partition("", high),
        Some((0xcbf2_9ce4_8422_2325u64 % high as u64) as i64)
    );
    assert_eq!(
        marquee_partition("a", high),
        Some((0xaf63_dc4c_8601_ec8cu64 % high as u64) as i64)
    );
    assert_eq!(
        marquee_partition("foobar", high),
        Some((0x8594_4171_f739_67e8u64 % high as u64) as i64)
    );
    for partitions in [1u32, 2, 4, 7, 64] {
        for user in 0..2_000 {
            let user_id = format!("u{user}");
            assert_eq!(
                marquee_partition(&user_id, i64::from(partitions)),
                Some(i64::from(partition_for_user(&user_id, partitions))),
                "{user_id} of {partitions}"
            );
        }
    }
    assert_eq!(
        fnv1a_64("Amélie".as_bytes()) % 5,
        marquee_partition("Amélie", 5).unwrap() as u64
    );
}

#[test]
fn a_partition_count_below_one_is_null() {
    assert_eq!(marquee_partition("u1", 0), None);
    assert_eq!(marquee_partition("u1", -4), None);
}

#[test]
fn runs_through_the_ffi_entry_point() {
    let users = Arc::new(StringArray::from(vec![
        Some("u1"),
        None,
        Some("u42"),
        Some("u7"),
    ]));
    let counts = Arc::new(Int64Array::from(vec![Some(4), Some(4), Some(4), Some(0)]));
    let result = udf_test_support::call(__run, &[users, counts]);
    let result = result.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(result.len(), 4);
    assert_eq!(result.value(0), i64::from(partition_for_user("u1", 4)));
    assert!(result.is_null(1), "a NULL user id gives NULL");
    assert_eq!(result.value(2), i64::from(partition_for_user("u42", 4)));
    assert!(result.is_null(3));
}
