//! Where a run stands (enough to resume it exactly), how `fit` ended, and what it tells its
//! observers while it runs.

use crate::model_dir::EpochStats;
use crate::train::metrics::Evaluation;
use serde::{Deserialize, Serialize};

/// Where a run stands: enough to resume it exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epoch in progress (1-based).
    pub epoch: usize,
    /// Next step within that epoch.
    pub step: usize,
    /// Partial epoch totals.
    pub loss_sum: f64,
    /// Partial epoch correct predictions.
    pub correct: usize,
    /// Partial epoch samples.
    pub seen: usize,
    /// Finished epochs.
    pub history: Vec<EpochStats>,
    /// Best epoch so far (1-based) by the early-stopping metric.
    pub best_epoch: Option<usize>,
    /// The run ended because validation stopped improving.
    pub stopped_early: bool,
}

/// How `fit` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitEnd {
    /// All epochs ran.
    Completed,
    /// Early stopping ended the run.
    StoppedEarly,
    /// The interrupt flag was raised; the state is saved for resuming.
    Interrupted,
}

/// Receives progress while training runs.
pub trait TrainObserver {
    /// An epoch of `steps` steps begins.
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    /// A step finished; running mean loss and accuracy of the epoch so far.
    fn step_done(&mut self, _loss: f64, _accuracy: f64) {}
    /// An epoch finished; `validation` is the evaluation its validation figures come from.
    fn epoch_done(&mut self, _stats: &EpochStats, _validation: &Evaluation) {}
}

/// Several observers in turn.
impl TrainObserver for Vec<&mut dyn TrainObserver> {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        self.iter_mut().for_each(|o| o.epoch_started(epoch, steps));
    }

    fn step_done(&mut self, loss: f64, accuracy: f64) {
        self.iter_mut().for_each(|o| o.step_done(loss, accuracy));
    }

    fn epoch_done(&mut self, stats: &EpochStats, validation: &Evaluation) {
        self.iter_mut().for_each(|o| o.epoch_done(stats, validation));
    }
}
