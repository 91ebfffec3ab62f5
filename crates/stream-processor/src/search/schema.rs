//! What the search index holds of an item, and how text becomes terms.
//!
//! | field | from | kind |
//! |---|---|---|
//! | `item_id` | the id | raw term: the key of upserts |
//! | `number` | the item's number in the item table | `u64`, fast: read for every hit |
//! | `title` | the title | words (below), with frequencies and lengths for BM25 |
//! | `joined` | the title's words with an apostrophe, without it (`Pan's` → `pans`) | words, as `title` |
//! | `labels` | genres and tags | words, as `title` |
//! | `genre` | each genre, lower-cased | raw term: the `genre` filter |
//! | `year` | the year | `i64`, indexed: the year range and a year in the query |
//! | `facets` | `/genre/<genre>`, `/decade/<1990>` | facets: the counts of an answer |
//!
//! Words are what [`ANALYZER`] makes of text: runs of letters and digits, lower-cased, accents
//! folded to ASCII (`Amélie` → `amelie`); no stemming, which typo tolerance would compound.

use marquee_schemas::Item;
use tantivy::schema::{
    FAST, FacetOptions, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing,
    TextOptions,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument, Term};

/// The name the word analyzer is registered under.
pub const ANALYZER: &str = "marquee_words";

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub item_id: Field,
    pub number: Field,
    pub title: Field,
    pub joined: Field,
    pub labels: Field,
    pub genre: Field,
    pub year: Field,
    pub facets: Field,
}

/// The schema and its fields.
pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        item_id: builder.add_text_field("item_id", STRING),
        number: builder.add_u64_field("number", FAST),
        title: builder.add_text_field("title", words.clone()),
        joined: builder.add_text_field("joined", words.clone()),
        labels: builder.add_text_field("labels", words),
        genre: builder.add_text_field("genre", STRING),
        year: builder.add_i64_field("year", INDEXED),
        facets: builder.add_facet_field("facets", FacetOptions::default()),
    };
    (builder.build(), fields)
}

/// The fields of an index opened with [`schema`]'s schema.
pub fn fields(index: &Index) -> tantivy::Result<Fields> {
    let schema = index.schema();
    Ok(Fields {
        item_id: schema.get_field("item_id")?,
        number: schema.get_field("number")?,
        title: schema.get_field("title")?,
        joined: schema.get_field("joined")?,
        labels: schema.get_field("labels")?,
        genre: schema.get_field("genre")?,
        year: schema.get_field("year")?,
        facets: schema.get_field("facets")?,
    })
}

/// The word analyzer: letters and digits, lower-cased, accents folded.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The words of `text`, as the index holds them.
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    stream.process(&mut |token| words.push(token.text.clone()));
    words
}

/// The words of `text` that hold an apostrophe, without it: how a viewer types "Pan's" or
/// "Schindler's" when they leave it out ("pans", "schindlers").
pub fn joined_words(text: &str) -> String {
    text.split_whitespace()
        .filter(|word| word.contains(['\'', '’']))
        .map(|word| word.replace(['\'', '’'], ""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The decade of a year, as its facet names it (`1990`).
pub fn decade(year: i32) -> i32 {
    year.div_euclid(10) * 10
}

/// The document of item `number`.
pub fn document(fields: &Fields, item: &Item, number: u32) -> TantivyDocument {
    let mut document = TantivyDocument::new();
    document.add_text(fields.item_id, &item.item_id);
    document.add_u64(fields.number, u64::from(number));
    if let Some(title) = &item.title {
        document.add_text(fields.title, title);
        let joined = joined_words(title);
        if !joined.is_empty() {
            document.add_text(fields.joined, joined);
        }
    }
    for label in item.genres.iter().chain(&item.tags) {
        document.add_text(fields.labels, label);
    }
    for genre in &item.genres {
        document.add_text(fields.genre, genre.to_lowercase());
        document.add_facet(
            fields.facets,
            tantivy::schema::Facet::from_path(["genre", genre.as_str()]),
        );
    }
    if let Some(year) = item.year {
        document.add_i64(fields.year, i64::from(year));
        document.add_facet(
            fields.facets,
            tantivy::schema::Facet::from_path(["decade", decade(year).to_string().as_str()]),
        );
    }
    document
}

/// The term that names an item's document.
pub fn id_term(fields: &Fields, item_id: &str) -> Term {
    Term::from_field_text(fields.item_id, item_id)
}

/// A hash of an item's number and catalogue entry; the catalogue's fingerprint is their
/// wrapping sum, so an upsert updates it without reading the others. The number is in it: a
/// replay into a new directory may number the items differently.
pub fn item_hash(item: &Item, number: u32) -> u64 {
    let mut encoded = serde_json::to_vec(item).expect("an item serialises");
    encoded.extend_from_slice(&number.to_le_bytes());
    marquee_schemas::partition::fnv1a_64(&encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_cased_and_folded() {
        assert_eq!(
            words("Amélie (Fabuleux destin d'Amélie Poulain, Le)")[..1],
            ["amelie"]
        );
        assert_eq!(words("WALL·E"), ["wall", "e"]);
        assert_eq!(words("Schindler's List"), ["schindler", "s", "list"]);
        assert_eq!(
            words("Terminator 2: Judgment Day"),
            ["terminator", "2", "judgment", "day"]
        );
    }

    #[test]
    fn words_with_an_apostrophe_are_also_joined() {
        assert_eq!(joined_words("Pan's Labyrinth"), "Pans");
        assert_eq!(joined_words("Schindler’s List"), "Schindlers");
        assert_eq!(joined_words("Toy Story"), "");
    }

    #[test]
    fn decades_round_down() {
        assert_eq!(decade(1999), 1990);
        assert_eq!(decade(2000), 2000);
    }
}
