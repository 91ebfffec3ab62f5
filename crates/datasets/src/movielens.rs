//! Readers for the MovieLens releases.
//!
//! Three layouts are recognised by their files:
//! - ml-latest / ml-latest-small / ml-25m: `movies.csv` (`movieId,title,genres`) and
//!   `ratings.csv` (`userId,movieId,rating,timestamp`), UTF-8 with a header;
//! - ml-100k: `u.item` (pipe-separated, Latin-1, 19 genre flags) and `u.data` (tab-separated
//!   `user item rating timestamp`);
//! - ml-1m / ml-10m: `movies.dat` and `ratings.dat`, `::`-separated (ml-1m is Latin-1).
//!
//! Movies become catalogue items (title without the trailing year, genres, year from the title);
//! ratings become rating events in event order (timestamp ascending, ties in file order) with
//! deterministic ids `ml-{user}-{movie}-{timestamp}`, so importing twice changes nothing.
//! MovieLens ids are kept as they are: user 1 is `1`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use marquee_schemas::{Event, EventKind, Item};

/// MovieLens' genres, in the column order of ml-100k's genre flags (which start with one more
/// flag, "unknown").
pub const GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Which release layout a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Csv,
    Ml100k,
    Dat,
}

/// A loaded data set.
#[derive(Debug)]
pub struct Dataset {
    pub layout: Layout,
    pub items: Vec<Item>,
    /// Rating events in event order.
    pub ratings: Vec<Event>,
}

/// Detects the layout of `dir`.
pub fn detect(dir: &Path) -> Result<Layout> {
    if dir.join("ratings.csv").is_file() && dir.join("movies.csv").is_file() {
        Ok(Layout::Csv)
    } else if dir.join("u.data").is_file() && dir.join("u.item").is_file() {
        Ok(Layout::Ml100k)
    } else if dir.join("ratings.dat").is_file() && dir.join("movies.dat").is_file() {
        Ok(Layout::Dat)
    } else {
        Err(Error::Format(format!(
            "{} holds no MovieLens data: expected ratings.csv and movies.csv, u.data and u.item, \
             or ratings.dat and movies.dat",
            dir.display()
        )))
    }
}

/// Reads a whole data set.
pub fn load(dir: &Path) -> Result<Dataset> {
    let layout = detect(dir)?;
    let (items, mut ratings) = match layout {
        Layout::Csv => (
            read_csv_movies(&dir.join("movies.csv"))?,
            read_csv_ratings(&dir.join("ratings.csv"))?,
        ),
        Layout::Ml100k => (
            read_ml100k_items(&dir.join("u.item"))?,
            read_separated_ratings(&dir.join("u.data"), "\t")?,
        ),
        Layout::Dat => (
            read_dat_movies(&dir.join("movies.dat"))?,
            read_separated_ratings(&dir.join("ratings.dat"), "::")?,
        ),
    };
    // Stable: ties keep file order.
    ratings.sort_by_key(|event| event.timestamp);
    Ok(Dataset {
        layout,
        items,
        ratings,
    })
}

/// Splits `"Toy Story (1995)"` into `("Toy Story", Some(1995))`.
pub fn split_title_year(raw: &str) -> (String, Option<i32>) {
    let trimmed = raw.trim();
    if let Some(open) = trimmed.rfind('(') {
        let inside = trimmed[open + 1..].trim_end_matches(')');
        let year_text = inside.split(['-', '–']).next().unwrap_or("");
        if trimmed.ends_with(')')
            && year_text.len() == 4
            && let Ok(year) = year_text.parse::<i32>()
        {
            return (trimmed[..open].trim().to_owned(), Some(year));
        }
    }
    (trimmed.to_owned(), None)
}

fn item(movie_id: &str, raw_title: &str, genres: Vec<String>) -> Item {
    let (title, year) = split_title_year(raw_title);
    Item {
        item_id: movie_id.trim().to_owned(),
        title: Some(title),
        genres: genres
            .into_iter()
            .filter(|genre| !genre.is_empty() && genre != "(no genres listed)")
            .collect(),
        year: year.filter(|year| (1800..=3000).contains(year)),
        tags: Vec::new(),
        ..Item::default()
    }
}

fn rating_event(
    user: &str,
    movie: &str,
    rating: &str,
    seconds: &str,
    file: &Path,
) -> Result<Event> {
    let value: f32 = rating.trim().parse().map_err(|source| {
        Error::read(
            format!("{}: rating {rating:?} is not a number", file.display()),
            source,
        )
    })?;
    let seconds: i64 = seconds.trim().parse().map_err(|source| {
        Error::read(
            format!("{}: timestamp {seconds:?} is not a number", file.display()),
            source,
        )
    })?;
    let (user, movie) = (user.trim(), movie.trim());
    Ok(Event {
        event_id: format!("ml-{user}-{movie}-{seconds}"),
        user_id: user.to_owned(),
        item_id: movie.to_owned(),
        kind: EventKind::Rating,
        value: Some(value),
        timestamp: seconds * 1000,
        context: Default::default(),
    })
}

fn read_csv_movies(path: &Path) -> Result<Vec<Item>> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|source| Error::read(format!("opening {}", path.display()), source))?;
    let mut items = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|source| Error::read(format!("reading {}", path.display()), source))?;
        let genres = record
            .get(2)
            .unwrap_or("")
            .split('|')
            .map(str::to_owned)
            .collect();
        items.push(item(
            record.get(0).unwrap_or(""),
            record.get(1).unwrap_or(""),
            genres,
        ));
    }
    Ok(items)
}

fn read_csv_ratings(path: &Path) -> Result<Vec<Event>> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|source| Error::read(format!("opening {}", path.display()), source))?;
    let mut events = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|source| Error::read(format!("reading {}", path.display()), source))?;
        events.push(rating_event(
            record.get(0).unwrap_or(""),
            record.get(1).unwrap_or(""),
            record.get(2).unwrap_or(""),
            record.get(3).unwrap_or(""),
            path,
        )?);
    }
    Ok(events)
}

/// Reads a file as UTF-8, or as Latin-1 when it is not valid UTF-8 (ml-100k, ml-1m).
fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path)
        .map_err(|source| Error::read(format!("reading {}", path.display()), source))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error
            .into_bytes()
            .iter()
            .map(|&byte| byte as char)
            .collect(),
    })
}

fn read_ml100k_items(path: &Path) -> Result<Vec<Item>> {
    let text = read_text(path)?;
    let mut items = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 6 + GENRES.len() {
            return Err(Error::Format(format!(
                "{}: malformed line {line:?}",
                path.display()
            )));
        }
        // The "unknown" flag comes first and carries no genre.
        let flags = &fields[fields.len() - GENRES.len()..];
        let genres = flags
            .iter()
            .zip(GENRES)
            .filter(|(flag, _)| flag.trim() == "1")
            .map(|(_, genre)| genre.to_owned())
            .collect();
        items.push(item(fields[0], fields[1], genres));
    }
    Ok(items)
}

fn read_dat_movies(path: &Path) -> Result<Vec<Item>> {
    let text = read_text(path)?;
    let mut items = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split("::").collect();
        if fields.len() < 3 {
            return Err(Error::Format(format!(
                "{}: malformed line {line:?}",
                path.display()
            )));
        }
        let genres = fields[2].split('|').map(str::to_owned).collect();
        items.push(item(fields[0], fields[1], genres));
    }
    Ok(items)
}

fn read_separated_ratings(path: &Path, separator: &str) -> Result<Vec<Event>> {
    let text = read_text(path)?;
    let mut events = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(separator).collect();
        if fields.len() < 4 {
            return Err(Error::Format(format!(
                "{}: malformed line {line:?}",
                path.display()
            )));
        }
        events.push(rating_event(
            fields[0], fields[1], fields[2], fields[3], path,
        )?);
    }
    Ok(events)
}

/// Where the shared ml-latest-small copy lives relative to the repository, for tests and
/// benchmarks (`MARQUEE_MOVIELENS_DIR` overrides).
pub fn shared_small_dataset() -> Option<PathBuf> {
    let dir = std::env::var_os("MARQUEE_MOVIELENS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/ml-latest-small")
        });
    detect(&dir).is_ok().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_lose_their_year() {
        assert_eq!(
            split_title_year("Toy Story (1995)"),
            ("Toy Story".into(), Some(1995))
        );
        assert_eq!(
            split_title_year("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            (
                "City of Lost Children, The (Cité des enfants perdus, La)".into(),
                Some(1995)
            )
        );
        assert_eq!(split_title_year("Babylon 5"), ("Babylon 5".into(), None));
        assert_eq!(
            split_title_year("Fawlty Towers (1975-1979)"),
            ("Fawlty Towers".into(), Some(1975))
        );
    }

    #[test]
    fn reads_the_older_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = vec!["0"; 19];
        flags[5] = "1";
        fs::write(
            dir.path().join("u.item"),
            format!(
                "1|Toy Story (1995)|01-Jan-1995||http://x|{}\n",
                flags.join("|")
            ),
        )
        .unwrap();
        fs::write(
            dir.path().join("u.data"),
            "7\t1\t4\t881250949\n3\t1\t2\t881250000\n",
        )
        .unwrap();
        let dataset = load(dir.path()).unwrap();
        assert_eq!(dataset.layout, Layout::Ml100k);
        assert_eq!(dataset.items[0].genres, vec!["Comedy".to_owned()]);
        assert_eq!(dataset.ratings[0].user_id, "3", "sorted by timestamp");

        let dat = tempfile::tempdir().unwrap();
        fs::write(
            dat.path().join("movies.dat"),
            b"1::Am\xe9lie (2001)::Comedy|Romance\n",
        )
        .unwrap();
        fs::write(dat.path().join("ratings.dat"), "1::1::5::978300760\n").unwrap();
        let dataset = load(dat.path()).unwrap();
        assert_eq!(dataset.layout, Layout::Dat);
        assert_eq!(dataset.items[0].title.as_deref(), Some("Amélie"));
        assert_eq!(dataset.ratings[0].event_id, "ml-1-1-978300760");
    }
}
