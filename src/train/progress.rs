//! Terminal progress for training: an indicatif bar per epoch with the running loss and accuracy,
//! then the epoch's one-line summary.

use crate::model_dir::EpochStats;
use crate::train::metrics::Evaluation;
use crate::train::state::TrainObserver;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows a progress bar on stderr and prints epoch lines on stdout.
pub struct ConsoleProgress {
    epochs: usize,
    bar: Option<ProgressBar>,
}

impl ConsoleProgress {
    /// Progress for a run of `epochs` epochs.
    pub fn new(epochs: usize) -> ConsoleProgress {
        ConsoleProgress { epochs, bar: None }
    }
}

impl TrainObserver for ConsoleProgress {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        let bar = ProgressBar::new(steps as u64);
        let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn step_done(&mut self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if bar.position() % 20 == 0 {
                bar.set_message(format!("loss {loss:.4} acc {accuracy:.4}"));
            }
        }
    }

    fn epoch_done(&mut self, stats: &EpochStats, validation: &Evaluation) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("{}", stats.line(self.epochs, validation.samples > 0));
    }
}
