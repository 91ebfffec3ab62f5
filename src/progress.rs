//! Progress of a long command: an indicatif bar on a terminal, a line every 10% otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    next_report: u64,
    started: Instant,
    label: String,
}

impl Progress {
    pub fn new(total: u64, label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            next_report: total / 10,
            started: Instant::now(),
            label: label.to_owned(),
        }
    }

    pub fn advance(&mut self, count: u64) {
        self.done += count;
        let done = self.done;
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if done >= self.next_report || done == self.total {
                    let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
                    let rate = done as f64 / seconds;
                    let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
                    eprintln!(
                        "{}: {done}/{} events, {rate:.0} events/s, ETA {eta:.0} s",
                        self.label, self.total
                    );
                    self.next_report = done + self.total / 10;
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} events in {seconds:.1} s ({:.0} events/s)",
            self.label,
            self.done,
            self.done as f64 / seconds.max(1e-3)
        );
    }
}
