//! The index against its catalogue: rebuilt when they differ, kept when they agree.

use super::*;

fn item(id: &str, title: &str) -> Item {
    Item {
        item_id: id.into(),
        title: Some(title.into()),
        genres: vec!["Drama".into()],
        year: Some(1999),
        tags: Vec::new(),
        ..Item::default()
    }
}

fn add(items: &ItemTable, entry: Item) -> u32 {
    let mut table = items.write();
    let number = table.assign(&entry.item_id).0;
    table.set_catalogue(number, entry);
    number
}

fn ids(search: &SearchIndex, items: &ItemTable, text: &str) -> Vec<String> {
    let request = SearchRequest {
        text: text.into(),
        count: 10,
        filters: Filters::default(),
        now: 0,
        filter: None,
    };
    let answer = search.search(&request, items, &|_| None).unwrap();
    answer
        .items
        .into_iter()
        .map(|found| found.item_id)
        .collect()
}

#[test]
fn a_catalogue_written_without_the_index_is_indexed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    let items = ItemTable::new(4);
    add(&items, item("a", "Alpha Centauri"));
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    assert_eq!(ids(&search, &items, "alpha"), ["a"]);
    drop(search);
    let meta = std::fs::read_to_string(path.join("meta.json")).unwrap();

    // Unchanged catalogue: opened as it is.
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    assert_eq!(
        std::fs::read_to_string(path.join("meta.json")).unwrap(),
        meta
    );
    drop(search);

    // A replay or a restore writes the catalogue alone: a new item, a changed title.
    add(&items, item("b", "Beta Pictoris"));
    add(&items, item("a", "Gamma Draconis"));
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    assert_eq!(ids(&search, &items, "pictoris"), ["b"]);
    assert_eq!(ids(&search, &items, "draconis"), ["a"]);
    assert!(ids(&search, &items, "alpha").is_empty());
}

#[test]
fn an_index_of_another_version_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    let items = ItemTable::new(4);
    add(&items, item("a", "Alpha Centauri"));
    drop(SearchIndex::open(&path, &items, Metrics::new(1)).unwrap());
    let meta = path.join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    let older = text.replace(&format!("marquee-search v{VERSION} "), "marquee-search v0 ");
    assert_ne!(text, older);
    std::fs::write(&meta, older).unwrap();
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    assert_eq!(ids(&search, &items, "centauri"), ["a"]);
    let reopened = std::fs::read_to_string(&meta).unwrap();
    assert!(reopened.contains(&format!("marquee-search v{VERSION} ")));
}

#[test]
fn writes_keep_the_fingerprint_of_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    let items = ItemTable::new(4);
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    let first = item("a", "Alpha Centauri");
    add(&items, first.clone());
    let mut writer = search.writer();
    writer.replace(None, &first, 0).unwrap();
    writer.commit().unwrap();
    let second = item("a", "Gamma Draconis");
    add(&items, second.clone());
    let mut writer = search.writer();
    writer.replace(Some(&first), &second, 0).unwrap();
    writer.commit().unwrap();
    drop(search);
    let meta = std::fs::read_to_string(path.join("meta.json")).unwrap();
    let search = SearchIndex::open(&path, &items, Metrics::new(1)).unwrap();
    assert_eq!(
        std::fs::read_to_string(path.join("meta.json")).unwrap(),
        meta,
        "the fingerprint matched: no rebuild"
    );
    assert_eq!(ids(&search, &items, "draconis"), ["a"]);
}
