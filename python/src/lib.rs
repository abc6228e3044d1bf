//! `wardrobe._native`: the library's models, training, evaluation and data set behind a Python
//! class. Conversion only: numpy arrays in and out (uint8 C-contiguous inputs are borrowed, not
//! copied), keyword arguments to the library's settings by name, library errors to Python
//! exceptions with the CLI's one-line message. The GIL is released while the library computes.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use wardrobe::data::dataset::{self, Dataset, Split};
use wardrobe::data::source::split_validation;
use wardrobe::data::{decode, photo};
use wardrobe::model_dir::{self, About, DataAbout, EpochStats, Loaded};
use wardrobe::nn::infer::{INFERENCE_BATCH, Predictor, probabilities_into};
use wardrobe::nn::layer::Shape;
use wardrobe::nn::model::{Model as Network, Workspace};
use wardrobe::predict::{DEFAULT_REVIEW_BELOW, Thresholds, top_k};
use wardrobe::train::checkpoint;
use wardrobe::train::config::SETTINGS;
use wardrobe::train::metrics::Evaluation;
use wardrobe::train::run_spec::{RunSpec, SpecFile};
use wardrobe::train::session;
use wardrobe::train::state::{FitEnd, TrainObserver};
use wardrobe::train::{calibration, history};

/// A library error as a Python exception: `OSError` for files, `ValueError` for the rest, with
/// the CLI's message.
fn py_err(e: impl Into<wardrobe::Error>) -> PyErr {
    match e.into() {
        e @ wardrobe::Error::Engine(wardrobe::EngineError::Io { .. }) => PyOSError::new_err(e.to_string()),
        e => PyValueError::new_err(e.to_string()),
    }
}

/// Images from a numpy array: uint8 0–255 or float 0–1, `[N, H, W]` or `[N, H, W, C]`.
struct Images<'py> {
    borrowed: Option<PyReadonlyArrayDyn<'py, u8>>,
    owned: Vec<u8>,
    /// N, H, W, C.
    shape: (usize, usize, usize, usize),
}

impl<'py> Images<'py> {
    /// Reads `x`, named `what` in errors; borrows a C-contiguous uint8 array.
    fn of(x: &Bound<'py, PyAny>, what: &str) -> PyResult<Images<'py>> {
        let array = x
            .cast::<numpy::PyUntypedArray>()
            .map_err(|_| PyValueError::new_err(format!("{what}: expected a numpy array, got {}", type_name(x))))?;
        let dims = array.shape().to_vec();
        let shape = match dims[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] => (n, h, w, c),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "{what}: expected images of shape [N, H, W] or [N, H, W, C], got {dims:?}"
                )));
            }
        };
        if let Ok(bytes) = x.extract::<PyReadonlyArrayDyn<'py, u8>>() {
            if bytes.is_c_contiguous() {
                return Ok(Images { borrowed: Some(bytes), owned: Vec::new(), shape });
            }
            let owned = bytes.as_array().iter().copied().collect();
            return Ok(Images { borrowed: None, owned, shape });
        }
        let floats: Vec<f64> = if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f32>>() {
            a.as_array().iter().map(|&v| f64::from(v)).collect()
        } else if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f64>>() {
            a.as_array().iter().copied().collect()
        } else {
            return Err(PyValueError::new_err(format!(
                "{what}: expected uint8 (0–255) or float (0–1) pixels, got dtype {}",
                array.dtype()
            )));
        };
        if let Some(bad) = floats.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(PyValueError::new_err(format!(
                "{what}: float pixels must be in 0–1, found {bad}; divide by 255, or pass uint8 0–255"
            )));
        }
        Ok(Images { borrowed: None, owned: floats.iter().map(|v| (v * 255.0).round() as u8).collect(), shape })
    }

    /// The pixels, image after image.
    fn pixels(&self) -> &[u8] {
        match &self.borrowed {
            Some(b) => b.as_slice().expect("checked contiguous"),
            None => &self.owned,
        }
    }
}

/// The Python type name of `x`, for messages.
fn type_name(x: &Bound<PyAny>) -> String {
    x.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
}

/// Labels from a numpy array or sequence of non-negative integers.
fn labels(y: &Bound<PyAny>, classes: usize) -> PyResult<Vec<u16>> {
    let values: Vec<i64> = y.extract().map_err(|_| {
        PyValueError::new_err(format!("y: expected a 1-D array of integer class indices, got {}", type_name(y)))
    })?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u16::try_from(v).ok().filter(|&l| usize::from(l) < classes).ok_or_else(|| {
                PyValueError::new_err(format!("label {v} at index {i} is not a class 0–{}", classes.saturating_sub(1)))
            })
        })
        .collect()
}

/// Class names from `classes`: a list of names, or a count (Fashion-MNIST's names for 10).
fn class_names(classes: &Bound<PyAny>) -> PyResult<Vec<String>> {
    if let Ok(k) = classes.extract::<usize>() {
        return Ok(if k == 10 { dataset::fashion_classes() } else { (0..k).map(|i| i.to_string()).collect() });
    }
    let names: Vec<String> = classes
        .extract()
        .map_err(|_| PyValueError::new_err("classes: expected a number of classes or a list of class names"))?;
    dataset::check_classes(&names).map_err(py_err)?;
    Ok(names)
}

/// Training progress for Python: Keras-style lines through `print` (so notebooks show them),
/// and Ctrl-C (a pending KeyboardInterrupt) checked after every step.
struct PythonProgress<'a> {
    verbose: u8,
    epochs: usize,
    interrupt: &'a AtomicBool,
}

impl TrainObserver for PythonProgress<'_> {
    fn step_done(&mut self, _: f64, _: f64) {
        if Python::attach(|py| py.check_signals()).is_err() {
            self.interrupt.store(true, Ordering::Relaxed);
        }
    }

    fn epoch_done(&mut self, s: &EpochStats, _: &Evaluation) {
        if self.verbose == 0 {
            return;
        }
        let line = format!(
            "Epoch {}/{} - {:.1}s - loss: {:.4} - accuracy: {:.4} - val_loss: {:.4} - val_accuracy: {:.4} - lr: {:.3e}",
            s.epoch, self.epochs, s.seconds, s.loss, s.accuracy, s.val_loss, s.val_accuracy, s.lr
        );
        Python::attach(|py| {
            let printed = py.import("builtins").and_then(|b| b.call_method1("print", (line,)));
            if let Err(e) = printed {
                e.restore(py);
            }
        });
    }
}

/// A classifier: architecture, recipe, weights, class names and, once trained, calibration and
/// out-of-distribution score. See the `wardrobe` package for the documented API.
#[pyclass(module = "wardrobe._native")]
struct Model {
    /// Architecture, training recipe and validation split.
    run: RunSpec,
    /// Weights and what goes with them (`dir` names where it was last saved or loaded).
    loaded: Loaded,
    /// Whether the weights were trained (or loaded), not just initialised.
    trained: bool,
    /// The single-image workspace, reused between calls.
    single: Mutex<Option<Workspace>>,
}

impl Model {
    fn new(run: RunSpec, names: Vec<String>, trained: Option<Loaded>) -> PyResult<Model> {
        let loaded = match trained {
            Some(l) => l,
            None => {
                let network =
                    Network::initialised(run.model.clone(), names.len(), run.training.seed).map_err(py_err)?;
                Loaded { model: network, class_names: names, about: None, ood: None, dir: PathBuf::from("model") }
            }
        };
        let trained = loaded.about.is_some() || loaded.dir != Path::new("model");
        Ok(Model { run, loaded, trained, single: Mutex::new(None) })
    }

    fn check(&self, images: &Images, what: &str) -> PyResult<()> {
        let (_, h, w, c) = images.shape;
        self.loaded.check_images((h, w, c), what).map_err(py_err)
    }

    /// Calibrated class probabilities of `images`, the GIL released.
    fn probabilities(&self, py: Python, images: &Images) -> Vec<f32> {
        let (model, pixels) = (&self.loaded.model, images.pixels());
        if images.shape.0 == 1 {
            let mut single = self.single.lock().expect("workspace lock");
            let ws = single.get_or_insert_with(|| model.workspace(1));
            let mut out = vec![0.0; model.classes()];
            probabilities_into(model, ws, pixels, &mut out);
            return out;
        }
        py.detach(|| Predictor::new(model, INFERENCE_BATCH).probabilities(pixels))
    }
}

#[pymethods]
impl Model {
    /// A named preset ("seed", "default", "best") for images of `input_shape` (H, W, C) and
    /// `classes` (a count or names), with the preset's training recipe.
    #[staticmethod]
    #[pyo3(signature = (name, input_shape = (28, 28, 1), classes = None))]
    fn preset(name: &str, input_shape: (usize, usize, usize), classes: Option<&Bound<PyAny>>) -> PyResult<Model> {
        let names = match classes {
            Some(c) => class_names(c)?,
            None => dataset::fashion_classes(),
        };
        let mut run = RunSpec::preset(name).map_err(py_err)?;
        let (h, w, c) = input_shape;
        run.model = run.model.fitted_to(Shape::new(h, w, c), names.len());
        Model::new(run, names, None)
    }

    /// A model from a spec's JSON text (`model.json`'s `spec`, or a run spec with `training`).
    #[staticmethod]
    fn from_spec_json(text: &str, classes: &Bound<PyAny>) -> PyResult<Model> {
        let name = Path::new("spec");
        let run = match SpecFile::parse(text.as_bytes(), name).map_err(py_err)? {
            SpecFile::Run(run) => run,
            SpecFile::Model(model) => RunSpec { model, ..RunSpec::preset("seed").map_err(py_err)? },
        };
        let names = class_names(classes)?;
        let mut run = run;
        run.model = run.model.clone().fitted_to(run.model.input, names.len());
        Model::new(run, names, None)
    }

    /// The model directory `dir` (as `wardrobe train` writes it).
    #[staticmethod]
    fn load(py: Python, dir: PathBuf) -> PyResult<Model> {
        let loaded = py.detach(|| model_dir::load(&dir)).map_err(py_err)?;
        let run = RunSpec { model: loaded.model.spec.clone(), ..RunSpec::preset("seed").map_err(py_err)? };
        let names = loaded.class_names.clone();
        let mut model = Model::new(run, names, Some(loaded))?;
        model.trained = true;
        Ok(model)
    }

    /// Trains on `x`, `y` (the last `validation_split` of them held out); returns the history
    /// as a dict of lists. `settings` maps training settings by name to their text.
    #[pyo3(signature = (x, y, settings, validation_split = None, verbose = 1, checkpoint_dir = None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one each
    fn fit(
        &mut self,
        py: Python,
        x: &Bound<PyAny>,
        y: &Bound<PyAny>,
        settings: &Bound<PyDict>,
        validation_split: Option<f64>,
        verbose: u8,
        checkpoint_dir: Option<PathBuf>,
    ) -> PyResult<Py<PyDict>> {
        let images = Images::of(x, "x")?;
        self.check(&images, "x")?;
        let names = self.loaded.class_names.clone();
        let labels = labels(y, names.len())?;
        let (_, h, w, c) = images.shape;
        let full = Dataset::new(images.pixels().to_vec(), labels, (h, w, c), names.clone()).map_err(py_err)?;
        drop(images);
        let mut config = self.run.training.clone();
        let given: Vec<(String, String)> =
            settings.iter().map(|(k, v)| Ok((k.extract()?, v.str()?.to_string()))).collect::<PyResult<_>>()?;
        if let Some((name, _)) = given.iter().find(|(k, _)| !SETTINGS.contains(&k.as_str())) {
            return Err(PyValueError::new_err(format!(
                "unknown training setting '{name}'; the settings are {}",
                SETTINGS.join(", ")
            )));
        }
        for name in SETTINGS {
            if let Some((_, value)) = given.iter().find(|(k, _)| k == name) {
                config.set(name, value).map_err(py_err)?;
            }
        }
        config.validate().map_err(py_err)?;
        let val_split = validation_split.unwrap_or(self.run.val_split);
        let (train, val) = split_validation(full, val_split).map_err(py_err)?;
        let temporary = match checkpoint_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().map_err(|e| PyOSError::new_err(e.to_string()))?),
        };
        let dir =
            checkpoint_dir.clone().unwrap_or_else(|| temporary.as_ref().expect("made above").path().to_path_buf());
        let (mut network, resume) = if checkpoint::exists(&dir) && !dir.join("model.json").exists() {
            let ck = checkpoint::load(&checkpoint::checkpoint_dir(&dir)).map_err(py_err)?;
            config = ck.config;
            (ck.model, Some(ck.resume))
        } else if self.trained {
            let mut network =
                Network::initialised(self.loaded.model.spec.clone(), names.len(), config.seed).map_err(py_err)?;
            network.copy_layers_from(&self.loaded.model, network.spec.layers.len()).map_err(py_err)?;
            (network, None)
        } else {
            (Network::initialised(self.run.model.clone(), names.len(), config.seed).map_err(py_err)?, None)
        };
        let source = "numpy arrays given to Model.fit".to_string();
        let about = About {
            architecture: "python".into(),
            data: DataAbout { source, val_split: Some(val_split), ..Default::default() },
            ..Default::default()
        };
        let interrupt = AtomicBool::new(false);
        let mut progress = PythonProgress { verbose, epochs: config.epochs, interrupt: &interrupt };
        let data = (&train, &val);
        let end = py
            .detach(|| session::run(&mut network, about, config.clone(), resume, data, &dir, &mut progress, &interrupt))
            .map_err(py_err)?;
        if end == FitEnd::Interrupted {
            let message = match &checkpoint_dir {
                Some(d) => {
                    format!("fit interrupted; checkpoint saved: call fit again with checkpoint_dir={d:?} to continue")
                }
                None => "fit interrupted (pass checkpoint_dir= to be able to continue)".into(),
            };
            return Err(PyKeyboardInterrupt::new_err(message));
        }
        let mut loaded = py.detach(|| model_dir::load(&dir)).map_err(py_err)?;
        let epochs = py.detach(|| history::load(&dir)).map_err(py_err)?.unwrap_or_default();
        if temporary.is_some() {
            loaded.dir = PathBuf::from("model");
        }
        self.loaded = loaded;
        self.run.training = config;
        self.run.val_split = val_split;
        self.trained = true;
        *self.single.lock().expect("workspace lock") = None;
        let out = PyDict::new(py);
        type Field = fn(&EpochStats) -> f64;
        let fields: [(&str, Field); 6] = [
            ("loss", |e| e.loss),
            ("accuracy", |e| e.accuracy),
            ("val_loss", |e| e.val_loss),
            ("val_accuracy", |e| e.val_accuracy),
            ("lr", |e| f64::from(e.lr)),
            ("seconds", |e| e.seconds),
        ];
        for (key, field) in fields {
            out.set_item(key, epochs.iter().map(field).collect::<Vec<f64>>())?;
        }
        out.set_item("images_per_second", epochs.iter().map(|e| e.images_per_second).collect::<Vec<f64>>())?;
        Ok(out.unbind())
    }

    /// Calibrated class probabilities, float32 `[N, K]`.
    fn predict<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let images = Images::of(x, "x")?;
        self.check(&images, "x")?;
        let probs = self.probabilities(py, &images);
        let rows = images.shape.0;
        Ok(PyArray1::from_vec(py, probs).reshape([rows, self.loaded.class_names.len()])?.into_any())
    }

    /// Loss, accuracy and expected calibration error on `x`, `y`.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let images = Images::of(x, "x")?;
        self.check(&images, "x")?;
        let names = &self.loaded.class_names;
        let labels = labels(y, names.len())?;
        if labels.len() != images.shape.0 {
            return Err(PyValueError::new_err(format!("{} labels but {} images", labels.len(), images.shape.0)));
        }
        let probs = self.probabilities(py, &images);
        let (eval, ece) = py.detach(|| {
            let eval = Evaluation::from_probabilities(&probs, &labels, names);
            (eval, calibration::ece(&probs, &labels, names.len()))
        });
        let out = PyDict::new(py);
        out.set_item("loss", eval.loss)?;
        out.set_item("accuracy", eval.accuracy)?;
        out.set_item("ece", ece)?;
        Ok(out)
    }

    /// Labels photo files as `wardrobe label` does: path, label, confidence, top3, verdict,
    /// ood_score and needs_review per photo (a photo that cannot be read raises, naming it).
    #[pyo3(signature = (paths, review_below = DEFAULT_REVIEW_BELOW, unknown_above = None))]
    fn predict_photos<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        review_below: f32,
        unknown_above: Option<f32>,
    ) -> PyResult<Bound<'py, PyList>> {
        let loaded = &self.loaded;
        let shape = loaded.photo_shape().map_err(py_err)?;
        let limits = decode::Limits::pixels(decode::DEFAULT_MAX_PIXELS);
        let (probs, scores) = py
            .detach(|| -> wardrobe::Result<_> {
                let mut pixels = Vec::with_capacity(paths.len() * shape.len());
                for path in &paths {
                    pixels.extend(photo::load_as(path, shape, &limits)?);
                }
                let (probs, features) =
                    Predictor::new(&loaded.model, INFERENCE_BATCH).probabilities_and_features(&pixels);
                let k = loaded.class_names.len();
                let scores = loaded.ood.as_ref().map(|o| o.score.scores(&features, &probs, k));
                Ok((probs, scores))
            })
            .map_err(py_err)?;
        let thresholds =
            Thresholds { review_below, unknown_above: unknown_above.or(loaded.ood.as_ref().map(|o| o.threshold)) };
        let out = PyList::empty(py);
        let names = &loaded.class_names;
        for (i, (path, p)) in paths.iter().zip(probs.chunks_exact(names.len())).enumerate() {
            let top = top_k(p, names, 3);
            let score = scores.as_ref().map(|s| s[i]);
            let verdict = thresholds.verdict(top[0].probability, score);
            let row = PyDict::new(py);
            row.set_item("path", path.display().to_string())?;
            row.set_item("label", &top[0].label)?;
            row.set_item("confidence", top[0].probability)?;
            let top3: Vec<(String, f32)> = top.iter().map(|r| (r.label.clone(), r.probability)).collect();
            row.set_item("top3", top3)?;
            row.set_item("verdict", verdict.as_str())?;
            row.set_item("ood_score", score)?;
            row.set_item("needs_review", verdict != wardrobe::predict::Verdict::Label)?;
            out.append(row)?;
        }
        Ok(out)
    }

    /// Gives the model its int8 form, calibrated on the first `calibration` images of `x`;
    /// predictions, `save` and `to_onnx` then use it.
    fn quantize(&mut self, py: Python, x: &Bound<PyAny>, calibration: usize) -> PyResult<()> {
        let images = Images::of(x, "x")?;
        self.check(&images, "x")?;
        let (_, h, w, c) = images.shape;
        let (model, pixels) = (&mut self.loaded.model, images.pixels());
        py.detach(|| wardrobe::quantize::quantize_model(model, pixels, (h, w, c), calibration)).map_err(py_err)?;
        // The single-image workspace was made for the float form.
        *self.single.lock().expect("workspace lock") = None;
        Ok(())
    }

    /// Whether predictions run the int8 form (`quantize`).
    #[getter]
    fn quantized(&self) -> bool {
        self.loaded.model.int8().is_some()
    }

    /// Saves the model as a run directory the CLI reads (`evaluate --model DIR`, `serve`, …).
    fn save(&mut self, py: Python, dir: PathBuf) -> PyResult<()> {
        let l = &self.loaded;
        py.detach(|| model_dir::save(&l.model, &l.class_names, l.about.as_ref(), l.ood.as_ref(), &dir))
            .map_err(py_err)?;
        self.loaded.dir = dir;
        Ok(())
    }

    /// Exports the model as ONNX (outputs `probabilities`, and `ood_score` when it has one).
    fn to_onnx(&self, py: Python, path: PathBuf) -> PyResult<()> {
        let l = &self.loaded;
        py.detach(|| wardrobe::onnx::export::write(&l.model, &l.class_names, l.ood.as_ref(), &path)).map_err(py_err)
    }

    /// Class names, in output order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.loaded.class_names.clone()
    }

    /// The input shape (H, W, C).
    #[getter]
    fn input_shape(&self) -> (usize, usize, usize) {
        let s = self.loaded.model.spec.input;
        (s.h, s.w, s.c)
    }

    /// The training recipe as `wardrobe train` flags, and the validation split.
    #[getter]
    fn recipe(&self) -> String {
        format!("{} --val-split {}", self.run.training.flags(), self.run.val_split)
    }

    /// The probability temperature calibration chose (1 before training).
    #[getter]
    fn temperature(&self) -> f32 {
        self.loaded.model.temperature
    }

    /// The out-of-distribution threshold above which a photo is unknown (None before training).
    #[getter]
    fn unknown_above(&self) -> Option<f32> {
        self.loaded.ood.as_ref().map(|o| o.threshold)
    }

    /// A table of the layers, their output shapes and parameters.
    fn summary(&self) -> String {
        self.loaded.model.summary()
    }
}

/// Fashion-MNIST from `dir` (the Debian package dataset-fashion-mnist by default): training and
/// test images uint8 `[N, 28, 28]` and labels uint8 `[N]`.
#[pyfunction]
#[pyo3(signature = (dir = None))]
fn load_fashion_mnist<'py>(py: Python<'py>, dir: Option<PathBuf>) -> PyResult<Bound<'py, PyList>> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(dataset::DEFAULT_DATA_DIR));
    let splits = py
        .detach(|| -> wardrobe::Result<Vec<Dataset>> {
            [Split::Train, Split::Test].into_iter().map(|s| Dataset::load_split(&dir, s)).collect()
        })
        .map_err(py_err)?;
    let out = PyList::empty(py);
    for data in splits {
        let (n, (rows, cols, channels)) = (data.len(), data.shape());
        if channels != 1 {
            return Err(PyValueError::new_err(format!("{}: not grey images", dir.display())));
        }
        let labels: Vec<u8> = data.labels.iter().map(|&l| l as u8).collect();
        let x = PyArray1::from_vec(py, data.images).reshape([n, rows, cols])?;
        out.append((x, PyArray1::from_vec(py, labels)))?;
    }
    Ok(out)
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load_fashion_mnist, m)?)?;
    m.add("DEFAULT_DATA_DIR", dataset::DEFAULT_DATA_DIR)?;
    m.add("SETTINGS", SETTINGS.to_vec())?;
    Ok(())
}
