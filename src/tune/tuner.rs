//! Running the trials of a search: each trial trains its configuration with the validation split
//! (never the test set), logs to TensorBoard with HParams session data, and is scored by its
//! validation accuracy. A time budget stops the search (the trial running at the deadline is
//! stopped and left out of the ranking), as does an interrupt.

use super::apply::apply;
use super::hparams_log::{SessionLog, write_experiment};
use super::space::{SearchSpace, Trial};
use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::nn::model::Model;
use crate::report::tensorboard::TensorBoardLog;
use crate::train::run_spec::RunSpec;
use crate::train::state::{FitEnd, TrainObserver};
use crate::train::trainer::Trainer;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the search runs.
pub struct TuneSettings {
    /// Where each trial's TensorBoard run and the experiment go.
    pub logdir: PathBuf,
    /// Stop after this long.
    pub budget: Option<Duration>,
}

/// The outcome of one trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    /// 1-based trial number.
    pub trial: usize,
    /// Hyper-parameter values, by name.
    pub hparams: Vec<(String, String)>,
    /// Validation accuracy of the epoch the model ends with.
    pub val_accuracy: f64,
    /// Its validation loss.
    pub val_loss: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time.
    pub seconds: f64,
    /// Whether it ran to the end (else the budget or an interrupt stopped it).
    pub completed: bool,
    /// The full configuration, to repeat it with `train --spec`.
    #[serde(skip)]
    pub spec: RunSpec,
}

/// Names a trial's run directory.
pub fn trial_dir(logdir: &Path, trial: usize) -> PathBuf {
    logdir.join(format!("trial-{trial:02}"))
}

/// Runs `trials` on top of `base`; `observer` sees every epoch; returns every trial run, in order.
pub fn run(
    base: &RunSpec,
    space: &SearchSpace,
    trials: &[Trial],
    data: (&Dataset, &Dataset),
    settings: &TuneSettings,
    observer: &mut dyn FnMut(usize, &Trial) -> Box<dyn TrainObserver>,
    interrupt: &AtomicBool,
) -> Result<Vec<TrialResult>> {
    write_experiment(&settings.logdir, space, "wardrobe tune")?;
    let deadline = settings.budget.map(|b| Instant::now() + b);
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| watch(&stop, &done, interrupt, deadline));
        let mut results = Vec::new();
        for (i, trial) in trials.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let result = run_trial(i + 1, trial, base, data, settings, &mut *observer(i + 1, trial), &stop);
            results.push(result);
            if results.last().is_some_and(|r: &Result<TrialResult>| r.is_err()) {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        results.into_iter().collect()
    })
}

/// Raises `stop` on interrupt or at the deadline, until `done`.
fn watch(stop: &AtomicBool, done: &AtomicBool, interrupt: &AtomicBool, deadline: Option<Instant>) {
    while !done.load(Ordering::Relaxed) {
        if interrupt.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_trial(
    number: usize,
    trial: &Trial,
    base: &RunSpec,
    data: (&Dataset, &Dataset),
    settings: &TuneSettings,
    observer: &mut dyn TrainObserver,
    stop: &AtomicBool,
) -> Result<TrialResult> {
    let started = Instant::now();
    let (model_spec, config) = apply(trial, &base.model, &base.training)?;
    let spec = RunSpec { model: model_spec.clone(), training: config.clone(), val_split: base.val_split };
    let dir = trial_dir(&settings.logdir, number);
    let session = SessionLog::start(&dir, trial)?;
    let mut tensorboard = TensorBoardLog::create(&dir, &data.0.classes)?;
    let mut model = Model::initialised(model_spec, data.0.classes.len(), config.seed)?;
    let mut trainer = Trainer::new(&mut model, config);
    let end = {
        let mut observers: Vec<&mut dyn TrainObserver> = vec![observer, &mut tensorboard];
        trainer.fit(data.0, data.1, &mut observers, stop, &mut |_| Ok(()))?
    };
    if let Some(e) = tensorboard.take_error() {
        return Err(e);
    }
    let completed = end != FitEnd::Interrupted;
    session.end(completed)?;
    let state = trainer.state();
    let restored = spec.training.early_stopping.is_some_and(|e| e.restore_best);
    let final_epoch = if restored { state.best_epoch } else { None }.unwrap_or(state.history.len());
    let stats = state.history.get(final_epoch.saturating_sub(1));
    Ok(TrialResult {
        trial: number,
        hparams: trial.iter().map(|(p, v)| (p.name().to_string(), v.clone())).collect(),
        val_accuracy: stats.map_or(0.0, |s| s.val_accuracy),
        val_loss: stats.map_or(f64::INFINITY, |s| s.val_loss),
        epochs: state.history.len(),
        seconds: started.elapsed().as_secs_f64(),
        completed,
        spec,
    })
}

/// Completed trials, best validation accuracy first (then lower loss, then earlier trial).
pub fn ranked(results: &[TrialResult]) -> Vec<&TrialResult> {
    let mut done: Vec<&TrialResult> = results.iter().filter(|r| r.completed).collect();
    done.sort_by(|a, b| {
        b.val_accuracy.total_cmp(&a.val_accuracy).then(a.val_loss.total_cmp(&b.val_loss)).then(a.trial.cmp(&b.trial))
    });
    done
}
