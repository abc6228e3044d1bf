//! TensorBoard's HParams plugin data for a tuning run: the experiment (hyper-parameters with the
//! values tried, and the validation metrics) at the log directory's root, and for each trial a
//! session start (its values) and end (its status) in the trial's own run directory, whose
//! `validation/` sub-run holds the metrics.

use super::space::{HParam, SearchSpace, Trial};
use crate::error::Result;
use crate::report::tb_proto::{
    Dim, Experiment, HParamInfo, HParamsData, HParamsPluginData, Kind, ListValue, MetricInfo, MetricName, PluginData,
    ProtoValue, SessionEndInfo, SessionStartInfo, SummaryMetadata, SummaryValue, TensorProto, TensorShape, Value,
};
use crate::report::tensorboard::{EventWriter, now};
use prost::Message;
use std::path::Path;

/// Tag of the experiment summary.
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
/// Tag of a session's start.
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
/// Tag of a session's end.
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// Metrics each session reports, from its `validation/` run.
const METRICS: [(&str, &str); 2] = [("epoch_accuracy", "validation accuracy"), ("epoch_loss", "validation loss")];

/// A summary value carrying hparams plugin data (its tensor is the plugin's empty float tensor).
fn plugin_value(tag: &str, data: HParamsData) -> SummaryValue {
    let content = HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
    let plugin_data = Some(PluginData { plugin_name: "hparams".into(), content });
    let empty = TensorProto { dtype: 1, tensor_shape: Some(TensorShape { dim: vec![Dim { size: 0 }] }) };
    SummaryValue { tag: tag.into(), metadata: Some(SummaryMetadata { plugin_data }), value: Some(Value::Tensor(empty)) }
}

/// A hyper-parameter value as TensorBoard shows it: numbers as numbers.
fn proto_value(param: HParam, value: &str) -> ProtoValue {
    let kind = match value.parse::<f64>() {
        Ok(x) if param.numeric() => Kind::NumberValue(x),
        _ => Kind::StringValue(value.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// Writes the experiment description into `logdir`.
pub fn write_experiment(logdir: &Path, space: &SearchSpace, name: &str) -> Result<()> {
    let hparam_infos = space
        .dims
        .iter()
        .map(|d| HParamInfo {
            name: d.param.name().into(),
            r#type: if d.param.numeric() { 3 } else { 1 },
            domain_discrete: Some(ListValue { values: d.values.iter().map(|v| proto_value(d.param, v)).collect() }),
        })
        .collect();
    let metric_infos = METRICS
        .iter()
        .map(|(tag, shown)| MetricInfo {
            name: Some(MetricName { group: "validation".into(), tag: tag.to_string() }),
            display_name: shown.to_string(),
            dataset_type: 2,
        })
        .collect();
    let experiment = Experiment {
        name: name.into(),
        description: "wardrobe tune".into(),
        time_created_secs: now(),
        hparam_infos,
        metric_infos,
    };
    EventWriter::create(logdir)?.summary(0, vec![plugin_value(EXPERIMENT_TAG, HParamsData::Experiment(experiment))])
}

/// The session record of one trial.
pub struct SessionLog {
    writer: EventWriter,
}

impl SessionLog {
    /// Records that the trial with `values` started, in its run directory `dir`.
    pub fn start(dir: &Path, values: &Trial) -> Result<SessionLog> {
        let hparams = values.iter().map(|(p, v)| (p.name().to_string(), proto_value(*p, v))).collect();
        let start = SessionStartInfo { hparams, group_name: String::new(), start_time_secs: now() };
        let mut writer = EventWriter::create(dir)?;
        writer.summary(0, vec![plugin_value(SESSION_START_TAG, HParamsData::SessionStartInfo(start))])?;
        Ok(SessionLog { writer })
    }

    /// Records how the trial ended.
    pub fn end(mut self, success: bool) -> Result<()> {
        let end = SessionEndInfo { status: if success { 1 } else { 2 }, end_time_secs: now() };
        self.writer.summary(0, vec![plugin_value(SESSION_END_TAG, HParamsData::SessionEndInfo(end))])
    }
}
