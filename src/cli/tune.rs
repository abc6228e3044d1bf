//! `wardrobe tune`: hyper-parameter search.

use super::{ArchitectureArgs, DataArgs, INTERRUPTED, check_input, install_ctrl_c};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::data::source::split_validation;
use wardrobe::train::config::TrainConfig;
use wardrobe::train::progress::ConsoleProgress;
use wardrobe::train::run_spec::{RunSpec, SpecFile};
use wardrobe::train::state::TrainObserver;
use wardrobe::tune::apply::apply;
use wardrobe::tune::output as tune_output;
use wardrobe::tune::space::{Search, SearchSpace};
use wardrobe::tune::tuner::{self, TrialResult, TuneSettings};
use wardrobe::{Error, Result};

#[derive(Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub architecture: ArchitectureArgs,
    /// A hyper-parameter and the values to try, NAME=V1,V2,… (repeat the flag for more). Names:
    /// optimizer, lr, batch_size, momentum, l2, weight_decay, dropout, filters (of the first
    /// convolution), schedule, augment (parts joined by +, e.g. flip+shift=2). Default:
    /// lr=0.0003,0.001,0.003 batch_size=64,128 dropout=0.25,0.5 optimizer=adam,adamw.
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// Trials to run (at most the grid size).
    #[arg(long, default_value_t = 6)]
    pub trials: usize,
    /// Epochs per trial.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// How trials are picked from the grid: grid (in order) or random (seeded).
    #[arg(long, default_value = "random")]
    pub search: Search,
    /// Stop the search after this many minutes (the trial then running is left out).
    #[arg(long)]
    pub budget_minutes: Option<f64>,
    /// Seed of every trial (initialisation, shuffling, dropout) and of the random search.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of the training set held out for validation (the last images).
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Directory for the ranking (trials.json, trials.csv) and the best run spec (best.json).
    #[arg(long, default_value = "runs/tune")]
    pub out: PathBuf,
    /// TensorBoard directory with the HParams experiment and one run per trial (default OUT/logs).
    #[arg(long)]
    pub logdir: Option<PathBuf>,
}

fn tune_base(a: &TuneArgs, data: &Dataset) -> Result<RunSpec> {
    let training = TrainConfig { epochs: a.epochs, seed: a.seed, ..TrainConfig::default() };
    let mut base = match a.architecture.spec_file()? {
        Some(SpecFile::Run(run)) => run,
        Some(SpecFile::Model(model)) => RunSpec { model, training, val_split: a.val_split },
        None => RunSpec { model: a.architecture.preset_for(data)?, training, val_split: a.val_split },
    };
    check_input(&base.model, data)?;
    (base.training.epochs, base.training.seed, base.val_split) = (a.epochs, a.seed, a.val_split);
    Ok(base)
}

/// Runs the search and saves the ranking and the best run spec.
pub fn run(a: TuneArgs) -> Result<()> {
    if a.trials == 0 {
        return Err(Error::flag("--trials", a.trials, "must be at least 1"));
    }
    if a.budget_minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
        return Err(Error::flag("--budget-minutes", a.budget_minutes.unwrap_or_default(), "must be a positive number"));
    }
    let space = if a.params.is_empty() { SearchSpace::default_space() } else { SearchSpace::parse(&a.params)? };
    let full = a.data.source().load(Split::Train)?;
    let base = tune_base(&a, &full)?;
    base.training.validate()?;
    let trials = space.trials(a.search, a.trials, a.seed);
    for trial in &trials {
        apply(trial, &base.model, &base.training)?;
    }
    let (train, val) = split_validation(full, base.val_split)?;
    let logdir = a.logdir.clone().unwrap_or_else(|| a.out.join("logs"));
    println!(
        "tuning: {} of {} grid points, {} epochs each, {} training / {} validation images; TensorBoard: {}",
        trials.len(),
        space.grid().len(),
        base.training.epochs,
        train.len(),
        val.len(),
        logdir.display()
    );
    install_ctrl_c()?;
    let settings =
        TuneSettings { logdir, budget: a.budget_minutes.map(|m| std::time::Duration::from_secs_f64(m * 60.0)) };
    let epochs = base.training.epochs;
    let mut observer = |number: usize, trial: &wardrobe::tune::space::Trial| -> Box<dyn TrainObserver> {
        let values: Vec<String> = trial.iter().map(|(p, v)| format!("{}={v}", p.name())).collect();
        println!("trial {number}/{}: {}", trials.len(), values.join(" "));
        Box::new(ConsoleProgress::new(epochs))
    };
    let results = tuner::run(&base, &space, &trials, (&train, &val), &settings, &mut observer, &INTERRUPTED)?;
    let ranking = tuner::ranked(&results);
    print_ranking(&ranking);
    tune_output::save(&a.out, &results, &ranking)?;
    match ranking.first() {
        Some(best) => println!(
            "best: trial {} (val_acc {:.4}); saved {}; repeat it with: wardrobe train --spec {}",
            best.trial,
            best.val_accuracy,
            a.out.join("best.json").display(),
            a.out.join("best.json").display()
        ),
        None => println!("no trial completed"),
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn print_ranking(ranking: &[&TrialResult]) {
    println!("{:<5}{:<7}{:>9}{:>10}{:>8}  hyper-parameters", "rank", "trial", "val_acc", "val_loss", "time");
    for (rank, r) in ranking.iter().enumerate() {
        let values: Vec<String> = r.hparams.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<5}{:<7}{:>9.4}{:>10.4}{:>7.1}s  {}",
            rank + 1,
            r.trial,
            r.val_accuracy,
            r.val_loss,
            r.seconds,
            values.join(" ")
        );
    }
}
