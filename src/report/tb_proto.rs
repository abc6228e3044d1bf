//! The protocol buffers TensorBoard reads, as prost messages with the field numbers of
//! tensorflow/tensorboard's event.proto, summary.proto, tensor.proto, tensor_shape.proto,
//! google/protobuf/struct.proto and plugins/hparams/{api,plugin_data}.proto (only the fields we
//! write).

use std::collections::BTreeMap;

/// `Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step (here: the epoch).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// File format version, first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// A summary of values.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// Tag, e.g. `epoch_loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin owns the value.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "Value", tags = "2, 4, 8")]
    pub value: Option<Value>,
}

impl SummaryValue {
    /// A scalar.
    pub fn simple(tag: &str, v: f32) -> SummaryValue {
        SummaryValue { tag: tag.into(), metadata: None, value: Some(Value::SimpleValue(v)) }
    }
}

/// `Summary.Value.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An encoded image.
    #[prost(message, tag = "4")]
    Image(Image),
    /// A tensor (plugins' payload carrier).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `Summary.Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// PNG bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The owning plugin and its data.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// Plugin name, e.g. `hparams`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// The plugin's serialised message.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `TensorProto`: only dtype and shape (the hparams plugin's empty float tensor).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType` (1 = DT_FLOAT).
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    /// Dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

/// `TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    /// Size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `google.protobuf.Value` (the kinds we use).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoValue {
    /// The value.
    #[prost(oneof = "Kind", tags = "2, 3")]
    pub kind: Option<Kind>,
}

/// `google.protobuf.Value.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A number.
    #[prost(double, tag = "2")]
    NumberValue(f64),
    /// A string.
    #[prost(string, tag = "3")]
    StringValue(String),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<ProtoValue>,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    /// Always 0.
    #[prost(int32, tag = "1")]
    pub version: i32,
    /// Experiment, session start or session end.
    #[prost(oneof = "HParamsData", tags = "2, 3, 4")]
    pub data: Option<HParamsData>,
}

/// `HParamsPluginData.data`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HParamsData {
    /// The experiment: hyper-parameters and metrics.
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    /// A session (trial) started with these values.
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    /// A session ended.
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    /// Description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// Creation time.
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    /// The hyper-parameters.
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    /// The metrics.
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
    /// Name.
    #[prost(string, tag = "6")]
    pub name: String,
}

/// `tensorboard.hparams.HParamInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `DataType`: 1 string, 3 float64.
    #[prost(int32, tag = "4")]
    pub r#type: i32,
    /// The values tried.
    #[prost(message, optional, tag = "5")]
    pub domain_discrete: Option<ListValue>,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    /// Run group and tag.
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    /// Shown name.
    #[prost(string, tag = "3")]
    pub display_name: String,
    /// `DatasetType`: 2 validation.
    #[prost(int32, tag = "5")]
    pub dataset_type: i32,
}

/// `tensorboard.hparams.MetricName`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    /// Sub-run of the session, e.g. `validation`.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Scalar tag.
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    /// Hyper-parameter values.
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    /// Group of repeated sessions (empty: its own).
    #[prost(string, tag = "4")]
    pub group_name: String,
    /// Start time.
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// `Status`: 1 success, 2 failure.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// End time.
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}
