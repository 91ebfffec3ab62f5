//! From the text a viewer typed to a tantivy query.
//!
//! The text is cut into words by the index's own analyzer (so `Amélie` and `amelie` are one
//! word). Each word must match (all words, or — when that finds nothing — any word), in the
//! title or in the genres and tags:
//!
//! - **exactly**, scored by BM25 (a title match weighs [`TITLE_BOOST`] times a label match; a
//!   title word typed without its apostrophe, "pans" for "Pan's", is a title match);
//! - **with typos**, in titles: words of [`ONE_EDIT_FROM`] letters or more match one edit
//!   away, of [`TWO_EDITS_FROM`] or more two (a transposition is one edit); a constant score,
//!   below an exact match. Only for a word that no title holds as it is: a word spelt right is
//!   not searched again with typos (each typo form walks the term dictionary with an automaton
//!   and collects its documents: dropping them for right words halved a search's cost);
//! - **as a prefix**, for the last word while the viewer is still typing it (the text does not
//!   end with a space): titles under the same typo rules, genres and tags without typos.
//!
//! A word that more than [`COMMON`] of all titles hold ("the" in a catalogue whose titles all
//! start with it) is left out of a query that has other words: its BM25 weight is about zero,
//! and requiring it only costs a seek in its long postings list for every candidate (a fifth of
//! a search's time on such a catalogue). A word still being typed is always kept.
//!
//! A word of four digits that could be a year (1870–2100) is optional: it matches the year
//! ([`YEAR_BOOST`], so "king kong 1933" puts the 1933 film before the 2005 one) or a title
//! word ("2001 a space odyssey"). Other all-digit words are optional too (a sequel's number
//! typed or not); a query of digits only needs one of them.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;

use super::schema::{Fields, words};

/// Words this long or longer match one edit away.
pub const ONE_EDIT_FROM: usize = 5;
/// Words this long or longer match two edits away.
pub const TWO_EDITS_FROM: usize = 9;
/// A title word weighs this many times a genre or tag word.
pub const TITLE_BOOST: f32 = 3.0;
/// A word in more than this share of the titles is left out when the query has other words.
pub const COMMON: f64 = 0.5;
/// The score a year in the query adds to the items of that year.
pub const YEAR_BOOST: f32 = 5.0;

/// One word of the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    /// The last word, still being typed: matches as a prefix too.
    pub prefix: bool,
}

/// The words of a query text; the last one is a prefix unless the text ends with a space.
pub fn parse(text: &str) -> Vec<Word> {
    let mut parsed: Vec<Word> = words(text)
        .into_iter()
        .map(|text| Word {
            text,
            prefix: false,
        })
        .collect();
    if !text.ends_with(char::is_whitespace)
        && let Some(last) = parsed.last_mut()
    {
        last.prefix = true;
    }
    parsed
}

/// The edits a word of this many letters may be away from a title's word.
pub fn edits(word: &str) -> u8 {
    match word.chars().count() {
        letters if letters >= TWO_EDITS_FROM => 2,
        letters if letters >= ONE_EDIT_FROM => 1,
        _ => 0,
    }
}

/// Whether a word is all digits (a sequel's number, a year).
pub fn is_digits(word: &str) -> bool {
    word.bytes().all(|byte| byte.is_ascii_digit())
}

/// The year a word names, if it could be one.
pub fn year(word: &str) -> Option<i64> {
    (word.len() == 4 && is_digits(word))
        .then(|| word.parse::<i64>().ok())
        .flatten()
        .filter(|year| (1870..=2100).contains(year))
}

/// The filters of a search, beside its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Only items of this genre (any case).
    pub genre: Option<String>,
    /// Only items of these years (inclusive bounds).
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
}

/// The query for `words`: every word must match (`all`), or any. `title_share` is the share
/// of the titles that hold a word as it is (0: none).
pub fn build(
    fields: &Fields,
    words: &[Word],
    all: bool,
    filters: &Filters,
    title_share: &dyn Fn(&Term) -> f64,
) -> Box<dyn Query> {
    let digits_only = words.iter().all(|word| is_digits(&word.text));
    let common = |word: &Word| {
        !word.prefix
            && !is_digits(&word.text)
            && title_share(&Term::from_field_text(fields.title, &word.text)) > COMMON
    };
    let telling = words
        .iter()
        .filter(|word| !is_digits(&word.text) && !common(word))
        .count();
    let in_titles = |term: &Term| title_share(term) > 0.0;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for word in words {
        if telling > 0 && common(word) {
            continue;
        }
        let optional = !digits_only && is_digits(&word.text);
        let occur = if all && !optional {
            Occur::Must
        } else {
            Occur::Should
        };
        clauses.push((occur, word_query(fields, word, &in_titles)));
    }
    if !all || digits_only {
        // Any word: wrap them, so the filters below stay required beside them.
        clauses = vec![(Occur::Must, Box::new(BooleanQuery::new(clauses)))];
    }
    if let Some(genre) = &filters.genre {
        let term = Term::from_field_text(fields.genre, &genre.to_lowercase());
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        ));
    }
    if filters.year_from.is_some() || filters.year_to.is_some() {
        let bound = |year: Option<i32>| match year {
            Some(year) => Bound::Included(Term::from_field_i64(fields.year, i64::from(year))),
            None => Bound::Unbounded,
        };
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                bound(filters.year_from),
                bound(filters.year_to),
            )),
        ));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// What matches one word: any of its exact, typo and prefix forms, in the title, genres and
/// tags.
fn word_query(fields: &Fields, word: &Word, in_titles: &dyn Fn(&Term) -> bool) -> Box<dyn Query> {
    let mut forms: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut add = |query: Box<dyn Query>, boost: f32| {
        forms.push((Occur::Should, Box::new(BoostQuery::new(query, boost))));
    };
    let title = Term::from_field_text(fields.title, &word.text);
    let edits = if in_titles(&title) {
        0
    } else {
        edits(&word.text)
    };
    add(
        Box::new(TermQuery::new(title.clone(), IndexRecordOption::WithFreqs)),
        TITLE_BOOST,
    );
    // A title word typed without its apostrophe ("pans" for "Pan's").
    add(
        Box::new(TermQuery::new(
            Term::from_field_text(fields.joined, &word.text),
            IndexRecordOption::WithFreqs,
        )),
        TITLE_BOOST,
    );
    if edits > 0 {
        add(
            Box::new(FuzzyTermQuery::new(title.clone(), edits, true)),
            1.0,
        );
    }
    if word.prefix {
        add(
            Box::new(FuzzyTermQuery::new_prefix(title, edits, true)),
            1.0,
        );
    }
    let label = Term::from_field_text(fields.labels, &word.text);
    add(
        Box::new(TermQuery::new(label.clone(), IndexRecordOption::WithFreqs)),
        1.0,
    );
    if word.prefix {
        add(
            Box::new(FuzzyTermQuery::new_prefix(label, 0, true)),
            1.0 / TITLE_BOOST,
        );
    }
    if let Some(year) = year(&word.text) {
        let term = Term::from_field_i64(fields.year, year);
        add(
            Box::new(ConstScoreQuery::new(
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                YEAR_BOOST,
            )),
            1.0,
        );
    }
    Box::new(BooleanQuery::new(forms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_is_a_prefix_until_a_space_follows() {
        let typing = parse("toy sto");
        assert_eq!(typing.len(), 2);
        assert!(!typing[0].prefix && typing[1].prefix);
        assert!(!parse("toy story ")[1].prefix);
        assert!(parse("  ").is_empty());
    }

    #[test]
    fn longer_words_allow_more_typos() {
        assert_eq!(edits("toy"), 0);
        assert_eq!(edits("alien"), 1);
        assert_eq!(edits("godfater"), 1);
        assert_eq!(edits("terminatr"), 2);
        assert_eq!(edits("amélie"), 1);
    }

    #[test]
    fn four_digits_in_range_are_a_year() {
        assert_eq!(year("1933"), Some(1933));
        assert_eq!(year("2001"), Some(2001));
        assert_eq!(year("1000"), None);
        assert_eq!(year("199"), None);
        assert_eq!(year("19x9"), None);
    }
}
