//! Where a long phase stands: a progress bar when stderr is a terminal, and
//! a plain line every tenth of the way otherwise, so a log stays readable.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    show: Show,
}

enum Show {
    Nothing,
    /// `done` at the last line printed.
    Lines {
        printed: usize,
    },
    Bar(ProgressBar),
}

impl Progress {
    /// A bar on a terminal, lines elsewhere; nothing at all unless `verbose`.
    pub fn new(what: &'static str, total: usize, verbose: bool) -> Progress {
        let show = if !verbose {
            Show::Nothing
        } else if std::io::stderr().is_terminal() {
            Show::Bar(bar(what, total))
        } else {
            Show::Lines { printed: 0 }
        };
        Progress {
            what,
            total,
            done: 0,
            started: Instant::now(),
            show,
        }
    }

    /// A bar on a terminal, nothing elsewhere: for a phase that prints its
    /// own lines.
    pub fn bar_only(what: &'static str, total: usize, verbose: bool) -> Progress {
        let mut progress = Progress::new(what, total, verbose);
        if !progress.is_bar() {
            progress.show = Show::Nothing;
        }
        progress
    }

    /// Whether a bar is drawn, which then wants frequent updates.
    pub fn is_bar(&self) -> bool {
        matches!(self.show, Show::Bar(_))
    }

    pub fn tick(&mut self) {
        self.set(self.done + 1);
    }

    /// Moves to `done`, printing a line when a tenth more is done.
    pub fn set(&mut self, done: usize) {
        self.done = done.min(self.total);
        match &mut self.show {
            Show::Nothing => {}
            Show::Bar(bar) => bar.set_position(self.done as u64),
            Show::Lines { printed } => {
                let step = (self.total / 10).max(1);
                if self.done >= *printed + step
                    || (self.done == self.total && *printed < self.total)
                {
                    *printed = self.done;
                    let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("  {} {}/{} ({rate:.0}/s)", self.what, self.done, self.total);
                }
            }
        }
    }

    /// A note next to the bar (duplicates so far, say); ignored without one.
    pub fn note(&self, note: String) {
        if let Show::Bar(bar) = &self.show {
            bar.set_message(note);
        }
    }

    /// Leaves the bar at its last state.
    pub fn finish(&self) {
        if let Show::Bar(bar) = &self.show {
            bar.finish();
        }
    }
}

fn bar(what: &str, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let template = format!(
        "  {what:<9} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{eta}} left) {{msg}}"
    );
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
