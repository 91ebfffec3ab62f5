//! `marquee replay`: the state rebuilt from the log into a new data directory, beside a node
//! that keeps serving (`marquee_node::replay`; docs/OPERATIONS.md says how to switch to it).

use std::path::PathBuf;

use anyhow::{Context, Result};
use marquee_node::replay::ReplayOptions;

use crate::args::LogArgs;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The node's data directory (its log is read, never written).
    #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Apply events appended from this time: `earliest`, milliseconds since the epoch, or
    /// RFC 3339 (2026-11-26T12:00:00Z).
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Apply events appended up to this time (same forms) [default: the end of the log
    /// when the replay starts].
    #[arg(long)]
    until: Option<String>,
    /// The new data directory (absent or empty).
    #[arg(long)]
    into: PathBuf,
    /// The node's configuration file: its `[model]`, `[log]` and store settings are used.
    #[arg(long, env = "MARQUEE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: LogArgs,
}

/// Parses `earliest`, milliseconds since the epoch, or an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<Option<i64>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("earliest") {
        return Ok(None);
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Some(ms));
    }
    let timestamp: jiff::Timestamp = text.parse().with_context(|| {
        format!(
            "{text:?} is not a time: write earliest, milliseconds since the epoch, or RFC 3339 \
             such as 2026-11-26T12:00:00Z"
        )
    })?;
    Ok(Some(timestamp.as_millisecond()))
}

/// Runs the replay (blocking: call it on a blocking thread of the runtime).
pub fn run(args: ReplayArgs) -> Result<()> {
    let node =
        crate::args::resolve_without_node(args.config.as_ref(), Some(args.data_dir), &args.log)?;
    let options = ReplayOptions {
        from_ms: parse_time(&args.from).context("--from")?,
        until_ms: args
            .until
            .as_deref()
            .map(parse_time)
            .transpose()
            .context("--until")?
            .flatten(),
        into: args.into.clone(),
        node,
        progress: true,
    };
    let summary = marquee_node::replay::replay(&options)?;
    let applied = summary.read - summary.before_window;
    eprintln!(
        "replayed {} log entries into {} in {:.1} s ({:.0} entries/s): {applied} in the window, \
         {} appended before it; offsets {:?} of {:?}",
        summary.read,
        args.into.join("state").display(),
        summary.seconds,
        summary.read as f64 / summary.seconds.max(1e-9),
        summary.before_window,
        summary.offsets,
        summary.log_end,
    );
    eprintln!(
        "to serve it: stop the node, move {0}/state aside and {1}/state in its place, start \
         the node (it applies what arrived since)",
        options.node.data_dir.display(),
        args.into.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_earliest_milliseconds_or_rfc_3339() {
        assert_eq!(parse_time("earliest").unwrap(), None);
        assert_eq!(
            parse_time("1700000000000").unwrap(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            Some(1_700_000_000_000)
        );
        let error = parse_time("yesterday").unwrap_err().to_string();
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
