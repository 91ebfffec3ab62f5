//! `marquee eval`: recommendation quality on a MovieLens release (`docs/QUALITY.md`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use marquee_eval::{EvalOptions, Protocol, Source};
use marquee_stream_processor::experiments::RankingSettings;

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// Per-user temporal hold-out.
    T,
    /// Prequential: test, then learn.
    P,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// T: per-user temporal hold-out; P: prequential (test, then learn).
    #[arg(long, value_enum, ignore_case = true)]
    protocol: ProtocolArg,
    /// MovieLens directory (ml-latest-small, ml-100k, ml-1m or ml-10m layout).
    #[arg(long, required_unless_present = "synthetic_events")]
    data: Option<PathBuf>,
    /// Instead of MovieLens: this many events of the synthetic stream (speed runs).
    #[arg(long, conflicts_with = "data")]
    synthetic_events: Option<u64>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Configuration file; its `[model]` and `[index]` sections are used, as by `serve`.
    #[arg(long, env = "MARQUEE_CONFIG")]
    config: Option<PathBuf>,
    /// Tuning run: Protocol T on the validation split of the training part, Protocol P on
    /// the first half of the stream.
    #[arg(long)]
    tuning: bool,
    /// Only the `marquee` row, without the reference rows.
    #[arg(long)]
    no_baselines: bool,
    /// An experiment's variants to compare before viewers see them: a JSON file holding
    /// `{"variants": [{"name": …, "config": {…}}, …]}` (an experiment's definition, as
    /// `POST /v1/admin/experiments` takes it, will do). One row per variant replaces the three
    /// `marquee` rows; a variant without `config` is the configuration's ranking.
    #[arg(long)]
    variants: Option<PathBuf>,
    /// At most this many items of one genre in each list of the `marquee` rows (the
    /// `max_per_genre` parameter of the lists, 1 to 100).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=100))]
    max_per_genre: Option<u16>,
}

/// The part of an experiment's definition `--variants` reads.
#[derive(serde::Deserialize)]
struct VariantsFile {
    variants: Vec<marquee_api::handlers::experiments::wire::VariantBody>,
}

/// The named ranking settings of a `--variants` file, checked as the API checks them.
fn read_variants(path: &std::path::Path) -> Result<Vec<(String, RankingSettings)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = serde_json::Deserializer::from_str(&text);
    let file: VariantsFile = serde_path_to_error::deserialize(&mut reader)
        .map_err(|error| anyhow!("{}: {}: {}", path.display(), error.path(), error.inner()))?;
    if file.variants.is_empty() {
        return Err(anyhow!("{}: variants: give at least one", path.display()));
    }
    file.variants
        .into_iter()
        .enumerate()
        .map(|(at, variant)| {
            let settings = variant
                .config
                .map(RankingSettings::from)
                .unwrap_or_default();
            settings
                .validate(&format!("variants[{at}].config"))
                .map_err(|error| anyhow!("{}: {error}", path.display()))?;
            Ok((variant.name, settings))
        })
        .collect()
}

/// Runs the evaluation (blocking: call it on a blocking thread).
pub fn run(args: EvalArgs) -> Result<()> {
    let data = match (args.data, args.synthetic_events) {
        (Some(dir), _) => Source::MovieLens(dir),
        (None, Some(events)) => Source::Synthetic(events),
        (None, None) => return Err(anyhow!("--data or --synthetic-events: give one")),
    };
    let protocol = match args.protocol {
        ProtocolArg::T => Protocol::T,
        ProtocolArg::P => Protocol::P,
    };
    let node = crate::args::resolve_without_node(args.config.as_ref(), None, &Default::default())?;
    let options = EvalOptions {
        protocol,
        data,
        validation: args.tuning && protocol == Protocol::T,
        first_half: args.tuning && protocol == Protocol::P,
        model: node.model,
        index: node.index,
        skip_baselines: args.no_baselines,
        variants: match &args.variants {
            Some(path) => read_variants(path)?,
            None => Vec::new(),
        },
        max_per_genre: args.max_per_genre.map(usize::from),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let results = marquee_eval::run(&options)?;
    print!("{}", marquee_eval::table(&results));
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&marquee_eval::json(&results))?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
