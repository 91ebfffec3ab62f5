//! The titles against the search's word rules, and through writes and compactions.

use super::super::query::parse;
use super::sets::within;
use super::*;

const CATALOGUE: [(&str, i32); 9] = [
    ("Godfather, The", 1972),
    ("Terminator, The", 1984),
    ("Terminator 2: Judgment Day", 1991),
    ("Amélie (Fabuleux destin d'Amélie Poulain, Le)", 2001),
    ("Pan's Labyrinth (Laberinto del fauno, El)", 2006),
    ("King Kong", 1933),
    ("King Kong", 2005),
    ("Toy Story", 1995),
    ("Toy Story 2", 1999),
];

fn item(title: &str, year: i32) -> Item {
    Item {
        item_id: title.into(),
        title: Some(title.into()),
        year: Some(year),
        ..Item::default()
    }
}

fn titles() -> Titles {
    let items: Vec<Item> = CATALOGUE
        .iter()
        .map(|&(title, year)| item(title, year))
        .collect();
    Titles::build(items.iter().enumerate().map(|(n, item)| (n as u32, item)))
}

/// The item numbers matching `text` (all words), best first.
fn find(titles: &Titles, text: &str) -> Vec<u32> {
    titles
        .find(&parse(text), true, 0)
        .into_iter()
        .map(|(_, number)| number)
        .collect()
}

#[test]
fn typos_prefixes_accents_apostrophes_and_years_match_as_in_a_search() {
    let titles = titles();
    assert_eq!(find(&titles, "godfater "), [0], "one edit in eight letters");
    assert_eq!(
        find(&titles, "toy stroy "),
        [7, 8],
        "a transposition is one edit"
    );
    assert_eq!(find(&titles, "termin"), [1, 2], "the last word is a prefix");
    assert!(
        find(&titles, "termin ").is_empty(),
        "a finished word is not"
    );
    assert_eq!(find(&titles, "amelie")[..1], [3], "accents folded");
    assert_eq!(find(&titles, "pans lab"), [4], "the apostrophe left out");
    assert_eq!(find(&titles, "king kong 1933"), [5, 6], "the year first");
    assert_eq!(find(&titles, "king kong 2005"), [6, 5]);
    assert_eq!(find(&titles, "toy story 2 "), [8, 7], "digits are optional");
    assert!(
        find(&titles, "tpy story ").is_empty(),
        "no typo in three letters"
    );
}

#[test]
fn an_exact_title_outranks_a_typo_and_a_shorter_title_a_longer_one() {
    let titles = titles();
    let scored = titles.find(&parse("toy story "), true, 0);
    assert_eq!(scored.len(), 2);
    assert!(scored[0].0 > scored[1].0, "{scored:?}");
    let typo = titles.find(&parse("toy stroy "), true, 0);
    assert!(typo[0].0 < scored[0].0, "{typo:?} against {scored:?}");
}

#[test]
fn any_word_and_single_word_checks_follow_the_catalogue() {
    let titles = titles();
    let words = parse("toy zzzzz ");
    assert!(titles.find(&words, true, 0).is_empty());
    assert!(titles.matches(&words[0]));
    assert!(!titles.matches(&words[1]));
    assert_eq!(
        titles
            .find(&words, false, 0)
            .into_iter()
            .map(|(_, number)| number)
            .collect::<Vec<_>>(),
        [7, 8]
    );
    assert_eq!(titles.find(&parse("t"), true, 1).len(), 1, "fetch bounds");
}

#[test]
fn replaced_and_deleted_titles_leave_and_survive_compaction() {
    let titles = titles();
    titles.apply(vec![
        (7, Some(Titled::of(&item("Toys of Summer", 1995)))),
        (0, None),
        (100, Some(Titled::of(&item("Brand New Title", 2024)))),
    ]);
    assert_eq!(find(&titles, "toy story "), [8]);
    assert_eq!(find(&titles, "toys "), [7]);
    assert!(find(&titles, "godfather").is_empty());
    assert_eq!(
        find(&titles, "bran"),
        [100],
        "a new word is in the dictionary"
    );
    titles.apply(vec![(
        101,
        Some(Titled::of(&item("Tora! Tora! Tora!", 1970))),
    )]);
    assert_eq!(
        find(&titles, "tor"),
        [101],
        "a new word its title holds three times"
    );
    // Enough replacements that the dead slots outnumber the live ones: compacted.
    let rounds = MIN_DEAD / 9 + 2;
    for round in 0..rounds {
        let changes = CATALOGUE
            .iter()
            .enumerate()
            .filter(|&(number, _)| number != 0 && number != 7)
            .map(|(number, &(title, year))| {
                let title = format!("{title} r{}", round % 2);
                (number as u32, Some(Titled::of(&item(&title, year))))
            })
            .collect();
        titles.apply(changes);
    }
    let state = titles.state.read();
    assert!(
        state.docs.len() < 2 * MIN_DEAD,
        "{} slots",
        state.docs.len()
    );
    assert_eq!(state.live, 10);
    drop(state);
    assert_eq!(find(&titles, "toy story "), [8]);
    assert_eq!(find(&titles, "king kong 1933"), [5, 6]);
    assert_eq!(find(&titles, "bran"), [100]);
    assert!(find(&titles, "godfather").is_empty());
    let last = format!("terminator r{} ", (rounds - 1) % 2);
    assert_eq!(find(&titles, &last), [1, 2]);
}

#[test]
fn the_distance_counts_neighbours_swapped_as_one_edit() {
    assert!(within("stroy", "story", 1));
    assert!(within("godfater", "godfather", 1));
    assert!(!within("godfatr", "godfather", 1));
    assert!(within("godfatr", "godfather", 2));
    assert!(within("harbour", "harbour", 0));
    assert!(!within("harbor", "harbour", 0));
    assert!(within("amelie", "amelia", 1));
}
