//! `marquee generate`: synthetic events (or the catalogue) as NDJSON on standard output.

use std::io::Write;

use anyhow::Result;

use crate::args::SyntheticArgs;

pub fn run(synthetic: &SyntheticArgs, events: u64, catalogue: bool) -> Result<()> {
    let generator = synthetic.generator(events);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if catalogue {
        generator.items().try_for_each(|item| {
            writeln!(out, "{}", serde_json::to_string(&item)?).map_err(Into::into)
        })
    } else {
        generator.events().try_for_each(|event| {
            writeln!(out, "{}", serde_json::to_string(&event)?).map_err(Into::into)
        })
    };
    match written.and_then(|()| out.flush().map_err(anyhow::Error::from)) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is a normal end.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}
