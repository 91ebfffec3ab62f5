//! `marquee eval`: recommendation quality on a MovieLens release (`docs/QUALITY.md`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use marquee_eval::{EvalOptions, Protocol, Source};

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
