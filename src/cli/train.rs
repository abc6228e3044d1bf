//! `wardrobe train`: train a model, or resume a run.

use super::{ArchitectureArgs, DataArgs, INTERRUPTED, check_input, install_ctrl_c, print_plans};
use clap::Args;
use std::path::{Path, PathBuf};
use wardrobe::data::augment::Augment;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::data::source::{DataSource, split_validation};
use wardrobe::model_dir::{self, About, DataAbout};
use wardrobe::nn::model::Model;
use wardrobe::optim::config::{OptimizerConfig, OptimizerKind};
use wardrobe::optim::lookahead::LookaheadConfig;
use wardrobe::optim::schedule::Schedule;
use wardrobe::report::tensorboard::TensorBoardLog;
use wardrobe::train::checkpoint;
use wardrobe::train::config::{EarlyStopping, Monitor, SETTINGS, TrainConfig};
use wardrobe::train::progress::ConsoleProgress;
use wardrobe::train::run_spec::{Given, RunSpec, SpecFile};
use wardrobe::train::session;
use wardrobe::train::state::{FitEnd, TrainObserver};
use wardrobe::{Error, Result};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub architecture: ArchitectureArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Update rule.
    /// adam (Keras defaults), adamw (decoupled weight decay, default 0.004), sgd (optional (Nesterov) momentum).
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Base learning rate (the schedule scales it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// SGD Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// L2 penalty λ on kernels, added to the loss as λ·Σw².
    #[arg(long, default_value_t = 0.0)]
    pub l2: f32,
    /// Decoupled weight decay on kernels (default 0.004 for adamw, else 0).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Lookahead around the update rule: every K steps the weights return to slow weights that
    /// moved ALPHA of the way towards them (K:ALPHA, e.g. 5:0.5), or none.
    #[arg(long, value_parser = parse_lookahead)]
    pub lookahead: Option<LookaheadFlag>,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP_EPOCHS], one-cycle.
    #[arg(long, default_value = "cosine", value_parser = Schedule::parse)]
    pub schedule: Schedule,
    /// Training augmentation: none, or a comma list of shift=N, flip (at random) or
    /// flip=alternate (each image mirrored in every other epoch), rotate=DEG, erase=P.
    #[arg(long, default_value = "none", value_parser = Augment::parse)]
    pub augment: Augment,
    /// Label smoothing ε: train towards (1 − ε)·one-hot + ε/K instead of one-hot.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of the training set held out for validation (the last images).
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Directory for the trained model, its checkpoint and history.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Write TensorBoard event files (train/ and validation/ runs) into this directory.
    #[arg(long)]
    pub logdir: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint (its saved settings apply).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Fine-tune: start from this model directory's architecture and weights (its last layer
    /// starts afresh when the data's classes differ from the model's).
    #[arg(long, conflicts_with_all = ["resume", "spec"])]
    pub init_from: Option<PathBuf>,
    /// Enable early stopping after this many epochs without improvement.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Metric early stopping watches.
    /// val-loss or val-accuracy.
    #[arg(long, default_value = "val-loss")]
    pub monitor: Monitor,
    /// Smallest change that counts as an improvement.
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Keep the last epoch's weights instead of restoring the best.
    #[arg(long)]
    pub no_restore_best: bool,
}

/// The value of `--lookahead`: K:ALPHA, or none to turn a preset's off.
#[derive(Debug, Clone, Copy)]
pub struct LookaheadFlag(Option<LookaheadConfig>);

/// Parses `--lookahead`.
fn parse_lookahead(s: &str) -> std::result::Result<LookaheadFlag, String> {
    LookaheadConfig::parse(s).map(LookaheadFlag)
}

impl TrainArgs {
    /// Training settings from the flags alone.
    fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: OptimizerConfig {
                kind: self.optimizer,
                lr: self.lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                l2: self.l2,
                weight_decay: self.weight_decay.unwrap_or(self.optimizer.default_weight_decay()),
                lookahead: self.lookahead.and_then(|flag| flag.0),
            },
            schedule: self.schedule,
            augment: self.augment,
            label_smoothing: self.label_smoothing,
            early_stopping: self.patience.map(|patience| EarlyStopping {
                monitor: self.monitor,
                patience,
                min_delta: self.min_delta,
                restore_best: !self.no_restore_best,
            }),
            seed: self.seed,
        }
    }

    /// A new model for `data` and its training settings and validation split: a run spec's,
    /// with the flags `given` on the command line overriding them, or the flags'.
    fn fresh_run(&self, given: Given, data: &Dataset) -> Result<(Model, About, TrainConfig, f64)> {
        let flags = self.config();
        let start = self.init_from.as_deref().map(model_dir::load).transpose()?;
        let run = match (self.architecture.spec_file()?, &start) {
            (_, Some(start)) => RunSpec {
                model: start.model.spec.clone().fitted_to(start.model.spec.input, data.classes.len()),
                training: flags,
                val_split: self.val_split,
            },
            (Some(SpecFile::Run(run)), None) => run.with_overrides(&flags, self.val_split, given),
            (Some(SpecFile::Model(model)), None) => RunSpec { model, training: flags, val_split: self.val_split },
            (None, None) => self.architecture.preset_run(data)?.with_overrides(&flags, self.val_split, given),
        };
        run.training.validate()?;
        check_input(&run.model, data)?;
        let mut model = Model::initialised(run.model, data.classes.len(), run.training.seed)?;
        let architecture = match (&self.init_from, &self.architecture.spec) {
            (Some(dir), _) => format!("init-from {}", dir.display()),
            (None, Some(file)) => format!("spec {}", file.display()),
            (None, None) => format!("preset {}", self.architecture.preset),
        };
        let source = self.data.train_csv.as_ref().unwrap_or(&self.data.data);
        let source = std::path::absolute(source).unwrap_or_else(|_| source.clone()).display().to_string();
        let recorded = DataAbout { source, val_split: Some(run.val_split), ..Default::default() };
        let about = About { architecture, data: recorded, ..Default::default() };
        if let Some(start) = start {
            let layers = model.spec.layers.len();
            let keep = if start.class_names == data.classes { layers } else { layers - 1 };
            model.copy_layers_from(&start.model, keep)?;
            if keep < layers {
                println!(
                    "fine-tuning {}: its {} classes are not the data's {}, so the last layer starts afresh",
                    start.dir.display(),
                    start.class_names.len(),
                    data.classes.len()
                );
            } else {
                println!("fine-tuning {}: every layer starts from its weights", start.dir.display());
            }
        }
        Ok((model, about, run.training, run.val_split))
    }
}

/// Flags that set a run's architecture or data split beside the training settings
/// ([`SETTINGS`] but `epochs`; `restore_best` is typed `--no-restore-best`): `--resume` takes them
/// all from the checkpoint, so typing one with it is a conflict.
const RUN_FLAGS: &[&str] = &["preset", "spec", "no_restore_best", "val_split"];

/// Whether the flag `id` sets part of a run's recipe that `--resume` keeps.
fn is_recipe_flag(id: &str) -> bool {
    RUN_FLAGS.contains(&id) || (SETTINGS.contains(&id) && !["epochs", "restore_best"].contains(&id))
}

/// The checkpoint of the run in `dir`, the data source it trained on and its validation split,
/// with `--epochs` applied when typed. Refuses flags that would change the saved recipe or data,
/// an `--epochs` the schedule cannot be stretched to, and a finished run with nothing to add.
fn resumed(a: &TrainArgs, given: Given, dir: &Path) -> Result<(checkpoint::Checkpoint, DataSource, f64)> {
    let resume_flag = format!("--resume {}", dir.display());
    let typed = RUN_FLAGS.iter().chain(SETTINGS).find(|id| is_recipe_flag(id) && given(id));
    if let Some(id) = typed {
        return Err(Error::Invalid(format!(
            "--{} conflicts with {resume_flag}: a resumed run keeps its saved recipe; drop the flag, or start \
             a new run from its weights with --init-from {}",
            id.replace('_', "-"),
            dir.display()
        )));
    }
    if !checkpoint::exists(dir) {
        return Err(Error::Invalid(format!(
            "{} has no checkpoint to resume: start the run with wardrobe train --out {}",
            dir.display(),
            dir.display()
        )));
    }
    let mut checkpoint = checkpoint::load(&checkpoint::checkpoint_dir(dir))?;
    let about = checkpoint.about.clone().unwrap_or_default();
    let recorded = PathBuf::from(&about.data.source);
    let source = if about.data.source.is_empty() {
        a.data.source()
    } else {
        let typed = a.data.train_csv.as_ref().filter(|_| given("train_csv")).or(given("data").then_some(&a.data.data));
        if let Some(typed) = typed {
            let absolute = std::path::absolute(typed).unwrap_or_else(|_| typed.clone());
            if absolute != recorded {
                return Err(Error::Invalid(format!(
                    "{} conflicts with {resume_flag}: the run trains on {}; drop the flag",
                    typed.display(),
                    recorded.display()
                )));
            }
        }
        let csv = recorded.is_file().then(|| recorded.clone());
        DataSource { dir: if csv.is_some() { a.data.data.clone() } else { recorded }, train_csv: csv, test_csv: None }
    };
    let val_split = about.data.val_split.unwrap_or(a.val_split);
    let (config, state) = (&mut checkpoint.config, &checkpoint.resume.state);
    let finished = state.history.len();
    let wanted = if given("epochs") { a.epochs } else { config.epochs };
    if wanted != config.epochs {
        let refusal = if wanted < finished {
            Some(format!("it has already finished {finished} epochs"))
        } else if state.stopped_early {
            Some("it stopped early because validation stopped improving".to_string())
        } else if config.schedule.depends_on_length() {
            Some(format!(
                "its {} learning-rate schedule was laid out over {} epochs, so every step's rate would change",
                config.schedule, config.epochs
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(Error::Invalid(format!(
                "{resume_flag} --epochs {wanted}: cannot extend the run to {wanted} epochs, {why}; start a new \
                 run with --epochs {wanted}, or fine-tune it with --init-from {}",
                dir.display()
            )));
        }
        config.epochs = wanted;
    }
    if state.stopped_early || finished >= config.epochs {
        return Err(Error::Invalid(format!(
            "{} has finished ({finished} of {} epochs{}); nothing to resume: evaluate it with wardrobe evaluate \
             --model {}, or extend it with {resume_flag} --epochs N",
            dir.display(),
            config.epochs,
            if state.stopped_early { ", stopped early" } else { "" },
            dir.display()
        )));
    }
    Ok((checkpoint, source, val_split))
}

/// Trains (or resumes) as the flags say; `given` tells which flags were typed.
pub fn run(a: TrainArgs, given: Given) -> Result<()> {
    let (mut model, about, config, resume, run_dir, val_split, full) = match &a.resume {
        Some(dir) => {
            let (checkpoint::Checkpoint { model, about, config, resume }, source, val_split) = resumed(&a, given, dir)?;
            let full = source.load(Split::Train)?;
            println!("resuming {} at epoch {} step {}", dir.display(), resume.state.epoch, resume.state.step);
            (model, about.unwrap_or_default(), config, Some(resume), dir.clone(), val_split, full)
        }
        None => {
            let full = a.data.source().load(Split::Train)?;
            let (model, about, config, val_split) = a.fresh_run(given, &full)?;
            (model, about, config, None, a.out.clone(), val_split, full)
        }
    };
    check_input(&model.spec, &full)?;
    if model.classes() != full.classes.len() {
        return Err(Error::Invalid(format!(
            "the model has {} classes, the training data {}",
            model.classes(),
            full.classes.len()
        )));
    }
    let (train, val) = split_validation(full, val_split)?;
    println!("{}", model.summary());
    print_plans(&model);
    println!(
        "training on {} images of {} classes, validating on {}, {} threads",
        train.len(),
        train.classes.len(),
        val.len(),
        rayon::current_num_threads()
    );
    println!("recipe: {} --val-split {val_split}", config.flags());
    install_ctrl_c()?;
    let mut console = ConsoleProgress::new(config.epochs);
    let mut tensorboard = a.logdir.as_deref().map(|dir| TensorBoardLog::create(dir, &train.classes)).transpose()?;
    let mut observers: Vec<&mut dyn TrainObserver> = vec![&mut console];
    if let Some(tb) = tensorboard.as_mut() {
        observers.push(tb);
    }
    let end = session::run(&mut model, about, config, resume, (&train, &val), &run_dir, &mut observers, &INTERRUPTED)?;
    if let Some(e) = tensorboard.as_mut().and_then(TensorBoardLog::take_error) {
        return Err(e);
    }
    match end {
        FitEnd::Interrupted => {
            println!("interrupted; checkpoint saved, continue with: wardrobe train --resume {}", run_dir.display());
            return Err(Error::Interrupted);
        }
        FitEnd::StoppedEarly => println!("early stopping: validation stopped improving"),
        FitEnd::Completed => {}
    }
    if val.is_empty() {
        println!("no validation images: probabilities stay uncalibrated (temperature 1)");
    } else {
        println!("calibration: temperature {:.3} fitted on the validation images", model.temperature);
    }
    println!("saved {}", run_dir.display());
    Ok(())
}
