//! The search index's costs without HTTP: the build time and resident memory of an index of a
//! synthetic catalogue (`marquee generate --catalogue`'s titles, genres and years), then
//! searches and suggestions on one thread with queries drawn from its titles with one random
//! typo each (and, for suggestions, cut inside a word as if still typed). With
//! `--write-queries DIR` it writes both query sets, URL-encoded, one per line, for the HTTP
//! load of `scripts/bench/search.sh`.
//!
//! `cargo run -p marquee-bench --bin search_cost -- --items 100000 [--queries 5000]
//!  [--write-queries DIR]`

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use marquee_datasets::synthetic::{Synthetic, SyntheticConfig};
use marquee_schemas::Item;
use marquee_stream_processor::Metrics;
use marquee_stream_processor::search::{Filters, SearchIndex, SearchRequest};
use marquee_vector_store::ItemTable;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// The node's allocator, so that the costs are the node's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Queries of each kind.
    #[arg(long, default_value_t = 5_000)]
    queries: usize,
    #[arg(long)]
    write_queries: Option<PathBuf>,
    /// Write the catalogue through catalogue-upsert commits of this many items (as a node
    /// loaded through `POST /v1/items` does), instead of one build.
    #[arg(long)]
    batch: Option<usize>,
}

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// `text` with one random edit (deletion, substitution, transposition or insertion) in one of
/// its words of five letters or more, if it has one.
fn with_typo(text: &str, rng: &mut impl Rng) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let long: Vec<usize> = (0..words.len())
        .filter(|&k| words[k].chars().count() >= 5)
        .collect();
    let Some(&which) = long.choose(rng) else {
        return text.to_owned();
    };
    let mut letters: Vec<char> = words[which].chars().collect();
    let at = rng.random_range(1..letters.len() - 1);
    match rng.random_range(0..4) {
        0 => {
            letters.remove(at);
        }
        1 => letters[at] = (b'a' + rng.random_range(0..26u8)) as char,
        2 => letters.swap(at, at + 1),
        _ => letters.insert(at, (b'a' + rng.random_range(0..26u8)) as char),
    }
    let typo: String = letters.into_iter().collect();
    let mut words: Vec<String> = words.into_iter().map(str::to_owned).collect();
    words[which] = typo;
    words.join(" ")
}

/// The first part of `text`, cut inside its last word (at least three letters of it).
fn typed(text: &str, rng: &mut impl Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let last_start = text
        .rfind(' ')
        .map_or(0, |space| text[..space].chars().count() + 1);
    let end = rng.random_range((last_start + 3).min(chars.len())..=chars.len());
    chars[..end].iter().collect()
}

fn percentiles(mut micros: Vec<f64>) -> String {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 - 1.0) * q) as usize];
    let mean = micros.iter().sum::<f64>() / micros.len() as f64;
    format!(
        "mean {mean:.0} µs, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({:.0}/s on one thread)",
        at(0.5),
        at(0.99),
        at(1.0),
        1e6 / mean
    )
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Adds `entries` to the item table and, with `search`, to the index in one commit.
fn add(items: &ItemTable, entries: &[Item], search: Option<&SearchIndex>) -> Result<()> {
    let mut writer = search.map(SearchIndex::writer);
    let mut table = items.write();
    for item in entries {
        let number = table.assign(&item.item_id).0;
        if let Some(writer) = &mut writer {
            writer.replace(None, item, number)?;
        }
        table.set_catalogue(number, item.clone());
    }
    if let Some(writer) = writer {
        writer.commit()?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let generator = Synthetic::new(SyntheticConfig {
        items: args.items,
        ..SyntheticConfig::default()
    });
    let items = ItemTable::new(32);
    let catalogue: Vec<Item> = generator.items().collect();
    let titles: Vec<String> = catalogue
        .iter()
        .map(|item| item.title.clone().unwrap_or_default())
        .collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("search");
    if args.batch.is_none() {
        add(&items, &catalogue, None)?;
    }
    // With `--batch`, the item table grows in the measured span too.
    let before = rss_kib();
    let started = Instant::now();
    let search = match args.batch {
        None => SearchIndex::open(&path, &items, Metrics::new(1)).context("building")?,
        Some(batch) => {
            let search = SearchIndex::open(&path, &items, Metrics::new(1))?;
            for chunk in catalogue.chunks(batch) {
                add(&items, chunk, Some(&search))?;
            }
            // Background merges: the reader follows them.
            std::thread::sleep(std::time::Duration::from_secs(2));
            search
        }
    };
    let build = started.elapsed().as_secs_f64();
    let after = rss_kib();
    let disk: u64 = std::fs::read_dir(&path)?
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "search index of {} items ({} segments): built in {build:.2} s; resident memory {} KiB → {} KiB \
         (+{} KiB); {} KiB on disk",
        args.items,
        search.segments(),
        before,
        after,
        after.saturating_sub(before),
        disk / 1024
    );

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let searches: Vec<String> = (0..args.queries)
        .map(|_| with_typo(&titles.choose(&mut rng).unwrap().to_lowercase(), &mut rng))
        .collect();
    let suggestions: Vec<String> = searches.iter().map(|q| typed(q, &mut rng)).collect();
    if let Some(out) = &args.write_queries {
        std::fs::create_dir_all(out)?;
        for (name, queries) in [("search.txt", &searches), ("suggest.txt", &suggestions)] {
            let mut file = std::fs::File::create(out.join(name))?;
            for query in queries.iter() {
                writeln!(file, "{}", url_encoded(query))?;
            }
        }
    }
    let mut micros = Vec::with_capacity(searches.len());
    let mut empty = 0usize;
    for query in &searches {
        let request = SearchRequest {
            text: query.clone(),
            count: 20,
            filters: Filters::default(),
            now: 0,
            filter: None,
        };
        let started = Instant::now();
        let answer = search.search(&request, &items, &|_| None)?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        empty += usize::from(answer.items.is_empty());
    }
    let mut slowest: Vec<(f64, &String)> = micros.iter().copied().zip(&searches).collect();
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "search (count 20, facets), {} queries with a typo: {}; {empty} empty; slowest: {:?}",
        searches.len(),
        percentiles(micros),
        &slowest[..5.min(slowest.len())]
    );
    let mut micros = Vec::with_capacity(suggestions.len());
    let mut empty = 0usize;
    for query in &suggestions {
        let started = Instant::now();
        let found = search.suggest(query, 8, &items, 0)?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        empty += usize::from(found.is_empty());
    }
    println!(
        "suggest (8), {} prefixes: {}; {empty} empty",
        suggestions.len(),
        percentiles(micros)
    );
    Ok(())
}
