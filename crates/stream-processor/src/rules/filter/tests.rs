//! The filter language's rules and its messages.

use super::*;

fn parse(text: &str) -> Result<Filter, FieldError> {
    let schema: PropertySchema = [
        ("regions".to_owned(), PropertyType::List),
        ("studio".to_owned(), PropertyType::String),
        ("rating".to_owned(), PropertyType::Number),
    ]
    .into();
    let saved: BTreeMap<String, String> =
        [("eu".to_owned(), "regions IN [\"fr\", \"de\"]".to_owned())].into();
    let request: BTreeMap<String, String> = [("region".to_owned(), "FR".to_owned())].into();
    Filter::parse(
        text,
        "filter",
        &Context {
            schema: &schema,
            saved: &saved,
            request: &request,
        },
    )
}

fn item() -> Item {
    Item {
        item_id: "m1".into(),
        title: Some("Amélie".into()),
        genres: vec!["Comedy".into(), "Romance".into()],
        year: Some(2001),
        properties: [
            (
                "regions".into(),
                PropertyValue::List(vec!["fr".into(), "be".into()]),
            ),
            ("rating".into(), PropertyValue::Number(7.5)),
        ]
        .into(),
        ..Item::default()
    }
}

fn accepts(text: &str) -> bool {
    parse(text).unwrap().accepts("m1", Some(&item()))
}

#[test]
fn comparisons_follow_the_documented_rules() {
    assert!(accepts("genres HAS \"comedy\" AND year >= 1990"));
    assert!(!accepts("genres has \"Drama\""));
    assert!(accepts("regions HAS $region"), "strings ignore ASCII case");
    assert!(
        accepts("genres IN [\"Drama\", \"Romance\"]"),
        "IN on a list: any"
    );
    assert!(accepts("item_id IN [\"m0\", \"m1\"]"));
    assert!(accepts("rating > 7 AND rating < 8 AND rating != 3"));
    assert!(accepts("@eu AND NOT (year < 2000 OR title = \"x\")"));
    assert!(
        accepts("NOT studio = \"A24\""),
        "a missing property fails, its NOT passes"
    );
    assert!(
        !accepts("studio != \"A24\""),
        "a missing property fails every comparison"
    );
    assert!(
        !parse("year > 1990").unwrap().accepts("m9", None),
        "not catalogued"
    );
    assert!(parse("item_id = \"m9\"").unwrap().accepts("m9", None));
    // AND binds tighter than OR.
    assert!(accepts("year = 1 AND year = 2 OR year = 2001"));
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let message = |text: &str| parse(text).unwrap_err().to_string();
    assert_eq!(
        message(""),
        "filter: at character 1: expected a condition, found the end"
    );
    assert_eq!(
        message("year >= 1990 AND"),
        "filter: at character 17: expected a condition, found the end"
    );
    assert_eq!(
        message("year ~ 3"),
        "filter: at character 6: unexpected character '~'"
    );
    assert_eq!(
        message("title = \"open"),
        "filter: at character 9: a string is not closed with \""
    );
    assert_eq!(
        message("year HAS 3"),
        "filter: at character 6: HAS needs a list field; year is a number"
    );
    assert_eq!(
        message("title < 3"),
        "filter: at character 7: < compares numbers; title is a string"
    );
    assert_eq!(
        message("genres IN \"Drama\""),
        "filter: at character 11: IN needs a list in brackets, found a string"
    );
    assert_eq!(
        message("year > $device"),
        "filter: at character 8: $device needs the request's device parameter"
    );
    assert_eq!(
        message("year > $age"),
        "filter: at character 8: unknown parameter $age; the request's are $region, $device, $maturity"
    );
    assert!(message(&"(".repeat(40)).contains("nested deeper than 32"));
    assert!(message(&"x".repeat(MAX_FILTER_BYTES + 1)).contains("at most 2048 bytes"));
}
