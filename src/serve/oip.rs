//! Open Inference Protocol v2 (KServe / Triton REST) messages for an image classifier: the
//! request is decoded and checked into u8 pixels, and the probabilities are encoded as the
//! response, either as FP32 rows or, with Triton's classification extension, as top-k strings,
//! beside each image's out-of-distribution score when the model carries one.
//! Both directions also speak Triton's binary tensor data extension: a JSON header of
//! `Inference-Header-Content-Length` bytes followed by the tensors' raw bytes, announced per
//! tensor by `parameters.binary_data_size`.

use super::api_error::ApiError;
use super::binary_data;
use super::flat_numbers::FlatNumbers;
use crate::data::photo::PhotoShape;
use crate::predict::top_k;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Name of the model's only input.
pub const INPUT_NAME: &str = "images";
/// Name of the model's class-probability output.
pub const OUTPUT_NAME: &str = "probabilities";
/// Name of the output holding each image's out-of-distribution score (FP32 `[N]`, higher = more
/// unusual), present when the model carries a score.
pub const OOD_OUTPUT_NAME: &str = "ood_score";
/// Most images one infer request may carry.
pub const MAX_IMAGES_PER_REQUEST: usize = 4096;

/// An inference request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters: `binary_data_output` asks for every output in binary; others are
    /// accepted and unused.
    #[serde(default)]
    pub parameters: Option<RequestParameters>,
    /// Exactly one input tensor.
    pub inputs: Vec<InputTensor>,
    /// Requested outputs, in the order the response lists them (default: every output).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    /// Tensor name.
    pub name: String,
    /// Dimensions, the first being the batch size.
    pub shape: Vec<i64>,
    /// Element type: UINT8 or FP32.
    pub datatype: String,
    /// Tensor parameters: `binary_data_size` says the elements are in the binary part.
    #[serde(default)]
    pub parameters: Option<TensorParameters>,
    /// Elements, flat or nested, row-major (absent when they come as binary data).
    #[serde(default)]
    pub data: Option<FlatNumbers>,
}

/// Parameters of a request.
#[derive(Debug, Default, Deserialize)]
pub struct RequestParameters {
    /// Return every output as binary data.
    #[serde(default)]
    pub binary_data_output: Option<bool>,
}

/// Parameters of an input tensor.
#[derive(Debug, Default, Deserialize)]
pub struct TensorParameters {
    /// Bytes of this tensor in the binary part of the body.
    #[serde(default)]
    pub binary_data_size: Option<u64>,
}

/// An output the client asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// `classification: k` asks for the top-k classes as strings.
    #[serde(default)]
    pub parameters: Option<OutputParameters>,
}

/// Parameters of a requested output.
#[derive(Debug, Default, Deserialize)]
pub struct OutputParameters {
    /// Top-k classification (Triton's classification extension).
    #[serde(default)]
    pub classification: Option<usize>,
    /// Return this output as binary data (true) or JSON (false).
    #[serde(default)]
    pub binary_data: Option<bool>,
}

/// The images of a decoded request.
#[derive(Debug, PartialEq)]
pub struct DecodedInput {
    /// u8 pixels, image after image.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub count: usize,
}

/// Parses and checks a request body for a model with inputs of `shape`. With `json_len` (the
/// `Inference-Header-Content-Length` header) the body is that many bytes of JSON followed by
/// binary tensor data.
pub fn decode(
    body: &[u8],
    json_len: Option<usize>,
    shape: PhotoShape,
) -> Result<(InferRequest, DecodedInput), ApiError> {
    let (json, binary) = match json_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "Inference-Header-Content-Length is {n}, but the body has only {} bytes",
                body.len()
            )));
        }
    };
    let request: InferRequest =
        serde_json::from_slice(json).map_err(|e| ApiError::bad_request(format!("invalid request JSON: {e}")))?;
    let [input] = request.inputs.as_slice() else {
        return Err(ApiError::bad_request(format!("expected exactly one input tensor, got {}", request.inputs.len())));
    };
    let count = batch_size(input, shape)?;
    let values = count * shape.len();
    let binary_size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
    let pixels = match (&input.data, binary_size) {
        (Some(data), None) if binary.is_empty() => json_pixels(input, data, values)?,
        (Some(_), None) => {
            return Err(ApiError::bad_request(format!(
                "{} bytes of binary data, but input '{INPUT_NAME}' has no parameters.binary_data_size",
                binary.len()
            )));
        }
        (None, Some(size)) => binary_data::input_pixels(&input.datatype, binary, size, values)?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has both data and parameters.binary_data_size"
            )));
        }
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}' has no data (give data, or parameters.binary_data_size and binary data)"
            )));
        }
    };
    check_outputs(&request)?;
    Ok((request, DecodedInput { pixels, count }))
}

/// The batch size implied by the input's shape, after checking the shape fits the data.
fn batch_size(input: &InputTensor, shape: PhotoShape) -> Result<usize, ApiError> {
    if input.name != INPUT_NAME {
        return Err(ApiError::bad_request(format!(
            "unknown input '{}'; the model's input is '{INPUT_NAME}'",
            input.name
        )));
    }
    let (side, channels) = (shape.side as i64, shape.channels as i64);
    let shape_ok = match input.shape.as_slice() {
        [_, h, w] => channels == 1 && *h == side && *w == side,
        [_, len] => *len == shape.len() as i64,
        [_, h, w, c] if channels > 1 => *c == channels && *h == side && *w == side,
        [_, c, h, w] => *c == channels && *h == side && *w == side,
        _ => false,
    };
    let n = input.shape.first().copied().unwrap_or(0);
    if !shape_ok || n < 1 {
        let image = if channels == 1 {
            format!("[N,{side},{side}], [N,1,{side},{side}]")
        } else {
            format!("[N,{side},{side},{channels}] (NHWC)")
        };
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}': shape {:?} not accepted; use {image} or [N,{}] with N ≥ 1",
            input.shape,
            shape.len()
        )));
    }
    let n = n as usize;
    if n > MAX_IMAGES_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}': {n} images; at most {MAX_IMAGES_PER_REQUEST} per request"
        )));
    }
    Ok(n)
}

/// Converts `values` of the input's datatype to pixels (UINT8 as they are, FP32 in [0, 1]
/// scaled by 255 and rounded), naming the first bad element.
pub(crate) fn to_pixels(datatype: &str, values: impl Iterator<Item = f64>) -> Result<Vec<u8>, ApiError> {
    let (convert, what): (fn(f64) -> Option<u8>, &str) = match datatype {
        "UINT8" => (exact_byte, "an integer in 0..=255"),
        "FP32" => (unit_to_byte, "a number in [0, 1]"),
        other => {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}': datatype '{other}' not supported; use UINT8 or FP32"
            )));
        }
    };
    let mut pixels = Vec::with_capacity(values.size_hint().0);
    for (index, value) in values.enumerate() {
        let Some(pixel) = convert(value) else {
            return Err(ApiError::bad_request(format!(
                "input '{INPUT_NAME}': element {index} is {value}, expected {what} for {datatype}"
            )));
        };
        pixels.push(pixel);
    }
    Ok(pixels)
}

/// The JSON data's values as u8 pixels (`values` of them).
fn json_pixels(input: &InputTensor, data: &FlatNumbers, values: usize) -> Result<Vec<u8>, ApiError> {
    if data.0.len() != values {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}': shape {:?} needs {values} values, data has {}",
            input.shape,
            data.0.len()
        )));
    }
    to_pixels(&input.datatype, data.0.iter().copied())
}

/// `v` as a byte if it is exactly one.
fn exact_byte(v: f64) -> Option<u8> {
    let byte = v as u8;
    (f64::from(byte) == v).then_some(byte)
}

/// `v` in [0, 1] scaled to a byte, rounding to nearest.
fn unit_to_byte(v: f64) -> Option<u8> {
    (0.0..=1.0).contains(&v).then_some((v * 255.0 + 0.5) as u8)
}

fn check_outputs(request: &InferRequest) -> Result<(), ApiError> {
    for output in request.outputs.iter().flatten() {
        let classification = output.parameters.as_ref().and_then(|p| p.classification);
        match output.name.as_str() {
            OUTPUT_NAME if classification == Some(0) => {
                return Err(ApiError::bad_request(format!(
                    "output '{OUTPUT_NAME}': classification must be at least 1"
                )));
            }
            OUTPUT_NAME => {}
            OOD_OUTPUT_NAME if classification.is_some() => {
                return Err(ApiError::bad_request(format!(
                    "output '{OOD_OUTPUT_NAME}' takes no classification; ask it of '{OUTPUT_NAME}'"
                )));
            }
            OOD_OUTPUT_NAME => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown output '{other}'; the model's outputs are '{OUTPUT_NAME}' and '{OOD_OUTPUT_NAME}'"
                )));
            }
        }
    }
    Ok(())
}

/// Refuses a request for the `ood_score` output of a model without a score (a 400 naming the
/// fix), before any inference is spent on it.
pub fn check_available(request: &InferRequest, has_ood: bool) -> Result<(), ApiError> {
    if !has_ood && request.outputs.iter().flatten().any(|o| o.name == OOD_OUTPUT_NAME) {
        return Err(ApiError::bad_request(format!(
            "output '{OOD_OUTPUT_NAME}': this model has no out-of-distribution score (trained before it existed); \
             train it again, or ask only for '{OUTPUT_NAME}'"
        )));
    }
    Ok(())
}

/// How the client wants the probabilities returned.
fn classification_k(request: &InferRequest) -> Option<usize> {
    request
        .outputs
        .iter()
        .flatten()
        .filter(|o| o.name == OUTPUT_NAME)
        .find_map(|o| o.parameters.as_ref().and_then(|p| p.classification))
}

/// The names of the outputs to return: those asked for in their order, or every output the
/// model has.
fn output_names(request: &InferRequest, has_ood: bool) -> Vec<&'static str> {
    match request.outputs.as_deref() {
        Some(asked) if !asked.is_empty() => {
            asked.iter().map(|o| if o.name == OOD_OUTPUT_NAME { OOD_OUTPUT_NAME } else { OUTPUT_NAME }).collect()
        }
        _ if has_ood => vec![OUTPUT_NAME, OOD_OUTPUT_NAME],
        _ => vec![OUTPUT_NAME],
    }
}

/// What the model computed for a request's images.
#[derive(Debug, Clone, Copy)]
pub struct Computed<'a> {
    /// Probabilities, rows of the class count.
    pub probabilities: &'a [f32],
    /// One out-of-distribution score per image, when the model carries a score.
    pub ood_scores: Option<&'a [f32]>,
}

/// The response to an infer request.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    /// The request's id, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    model_name: &'a str,
    model_version: &'a str,
    outputs: Vec<OutputTensor<'a>>,
}

/// An output tensor of a response.
#[derive(Debug, Serialize)]
struct OutputTensor<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    /// `binary_data_size` when the data is in the binary part.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputData<'a>>,
}

/// The elements of an output tensor: FP32 values, or top-k "score:index:label" strings.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    Numbers(&'a [f32]),
    Classes(Vec<String>),
}

/// The response of `model_version` of `model_name` to `request` given what the model
/// `computed` for its images (probabilities in rows of `class_names.len()`).
pub fn response<'a>(
    model_name: &'a str,
    model_version: &'a str,
    request: &'a InferRequest,
    computed: Computed<'a>,
    class_names: &[String],
) -> InferResponse<'a> {
    let classes = class_names.len();
    let probs = computed.probabilities;
    let n = probs.len() / classes;
    let tensor =
        |name, datatype, shape, data| OutputTensor { name, datatype, shape, parameters: None, data: Some(data) };
    let outputs = output_names(request, computed.ood_scores.is_some())
        .into_iter()
        .map(|name| match (name, classification_k(request), computed.ood_scores) {
            (OOD_OUTPUT_NAME, _, Some(scores)) => tensor(name, "FP32", vec![n], OutputData::Numbers(scores)),
            (_, Some(k), _) => {
                let k = k.min(classes);
                let strings: Vec<String> = probs
                    .chunks_exact(classes)
                    .flat_map(|row| top_k(row, class_names, k))
                    .map(|r| format!("{}:{}:{}", r.probability, r.index, r.label))
                    .collect();
                tensor(OUTPUT_NAME, "BYTES", vec![n, k], OutputData::Classes(strings))
            }
            _ => tensor(OUTPUT_NAME, "FP32", vec![n, classes], OutputData::Numbers(probs)),
        })
        .collect();
    InferResponse { id: request.id.as_deref(), model_name, model_version, outputs }
}

/// Whether the client asked for output `name` in binary: by the output's own `binary_data`, or
/// for all by the request's `binary_data_output` (which an output's own setting overrides).
fn wants_binary(request: &InferRequest, name: &str) -> bool {
    let own = request
        .outputs
        .iter()
        .flatten()
        .filter(|o| o.name == name)
        .find_map(|o| o.parameters.as_ref().and_then(|p| p.binary_data));
    let all = request.parameters.as_ref().and_then(|p| p.binary_data_output).unwrap_or(false);
    own.unwrap_or(all)
}

/// A response body and, when it carries binary data, the length of its JSON header.
pub struct EncodedResponse {
    /// The body.
    pub body: Vec<u8>,
    /// `Inference-Header-Content-Length`, for a binary response.
    pub json_len: Option<usize>,
}

/// The response to `request` as bytes, JSON or JSON header plus binary data as it asked.
pub fn encode(
    model_name: &str,
    model_version: &str,
    request: &InferRequest,
    computed: Computed,
    class_names: &[String],
) -> EncodedResponse {
    let mut response = response(model_name, model_version, request, computed, class_names);
    let json = |r: &InferResponse| serde_json::to_vec(r).expect("response serialises");
    let mut binary = Vec::new();
    for output in response.outputs.iter_mut().filter(|o| wants_binary(request, o.name)) {
        let bytes = match output.data.take().expect("data before encoding") {
            OutputData::Numbers(p) => binary_data::fp32_bytes(p),
            OutputData::Classes(strings) => binary_data::bytes_elements(&strings),
        };
        output.parameters = Some(json!({ "binary_data_size": bytes.len() }));
        binary.extend_from_slice(&bytes);
    }
    let mut body = json(&response);
    if binary.is_empty() {
        return EncodedResponse { body, json_len: None };
    }
    let json_len = body.len();
    body.extend_from_slice(&binary);
    EncodedResponse { body, json_len: Some(json_len) }
}

/// The model metadata document of a model whose loaded versions are `versions`, with the input
/// and outputs of the one described (`ood_score` among them when it `has_ood`).
pub fn model_metadata(model_name: &str, versions: &[u64], shape: PhotoShape, classes: usize, has_ood: bool) -> Value {
    let side = shape.side;
    let input = if shape.channels == 1 { json!([-1, side, side]) } else { json!([-1, side, side, shape.channels]) };
    let mut outputs = vec![json!({ "name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, classes] })];
    if has_ood {
        outputs.push(json!({ "name": OOD_OUTPUT_NAME, "datatype": "FP32", "shape": [-1] }));
    }
    json!({
        "name": model_name,
        "versions": versions.iter().map(u64::to_string).collect::<Vec<_>>(),
        "platform": "wardrobe",
        "inputs": [{ "name": INPUT_NAME, "datatype": "UINT8", "shape": input }],
        "outputs": outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY2: PhotoShape = PhotoShape { side: 2, channels: 1 };

    fn request(shape: &str, datatype: &str, data: &str) -> String {
        format!(r#"{{"inputs":[{{"name":"images","shape":{shape},"datatype":"{datatype}","data":{data}}}]}}"#)
    }

    fn error_of(body: &str) -> String {
        decode(body.as_bytes(), None, GREY2).unwrap_err().message
    }

    #[test]
    fn accepts_every_documented_shape_and_nesting() {
        for shape in ["[1,2,2]", "[1,4]", "[1,1,2,2]"] {
            let (_, input) = decode(request(shape, "UINT8", "[0,1,254,255]").as_bytes(), None, GREY2).unwrap();
            assert_eq!(input, DecodedInput { pixels: vec![0, 1, 254, 255], count: 1 });
        }
        let (_, input) =
            decode(request("[2,2,2]", "FP32", "[[[0,0.5],[1,0]],[[0,0],[0,1.0]]]").as_bytes(), None, GREY2).unwrap();
        assert_eq!(input, DecodedInput { pixels: vec![0, 128, 255, 0, 0, 0, 0, 255], count: 2 });
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(error_of("{").contains("invalid request JSON"));
        assert!(error_of(r#"{"inputs":[]}"#).contains("exactly one input"));
        assert!(error_of(&request("[1,3,3]", "UINT8", "[0,0,0,0]")).contains("shape [1, 3, 3] not accepted"));
        assert!(error_of(&request("[0,2,2]", "UINT8", "[]")).contains("N ≥ 1"));
        assert!(error_of(&request("[2,2,2]", "UINT8", "[0,0,0,0]")).contains("needs 8 values, data has 4"));
        assert!(error_of(&request("[1,2,2]", "INT64", "[0,0,0,0]")).contains("datatype 'INT64' not supported"));
        assert!(error_of(&request("[1,2,2]", "UINT8", "[0,0,0,256]")).contains("element 3 is 256"));
        assert!(error_of(&request("[1,2,2]", "UINT8", "[0,0.5,0,0]")).contains("element 1 is 0.5"));
        assert!(error_of(&request("[1,2,2]", "FP32", "[0,0,1.5,0]")).contains("element 2 is 1.5"));
        assert!(error_of(&request("[1,2,2]", "UINT8", r#"[0,0,"a",0]"#)).contains("invalid request JSON"));
        let wrong_output = r#"{"inputs":[{"name":"images","shape":[1,4],"datatype":"UINT8","data":[0,0,0,0]}],"outputs":[{"name":"x"}]}"#;
        assert!(error_of(wrong_output).contains("unknown output 'x'"));
    }

    #[test]
    fn classification_returns_top_k_strings() {
        let body = r#"{"id":"r1","inputs":[{"name":"images","shape":[1,4],"datatype":"UINT8","data":[0,0,0,0]}],
            "outputs":[{"name":"probabilities","parameters":{"classification":2}}]}"#;
        let (asked, _) = decode(body.as_bytes(), None, GREY2).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let plain_probs = Computed { probabilities: &[0.25, 0.5, 0.25], ood_scores: None };
        let out = serde_json::to_value(response("m", "1", &asked, plain_probs, &names)).unwrap();
        assert_eq!(out["id"], "r1");
        assert_eq!(out["outputs"][0]["datatype"], "BYTES");
        assert_eq!(out["outputs"][0]["shape"], json!([1, 2]));
        assert_eq!(out["outputs"][0]["data"], json!(["0.5:1:b", "0.25:0:a"]));
        let plain = decode(request("[1,4]", "UINT8", "[0,0,0,0]").as_bytes(), None, GREY2).unwrap().0;
        let out = serde_json::to_value(response("m", "1", &plain, plain_probs, &names)).unwrap();
        assert_eq!(out["outputs"][0]["shape"], json!([1, 3]));
        assert_eq!(out["outputs"][0]["data"], json!([0.25, 0.5, 0.25]));
        assert_eq!(out["outputs"].as_array().unwrap().len(), 1);
        assert!(out.get("id").is_none());
    }

    #[test]
    fn ood_score_is_a_second_output_asked_for_or_by_default() {
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let computed = Computed { probabilities: &[0.25, 0.75, 1.0, 0.0], ood_scores: Some(&[0.5, 7.0]) };
        let plain = decode(request("[2,4]", "UINT8", "[0,0,0,0,0,0,0,0]").as_bytes(), None, GREY2).unwrap().0;
        let out = serde_json::to_value(response("m", "1", &plain, computed, &names)).unwrap();
        assert_eq!(
            out["outputs"][1],
            json!({"name": "ood_score", "datatype": "FP32", "shape": [2], "data": [0.5, 7.0]})
        );
        let only = r#"{"inputs":[{"name":"images","shape":[1,4],"datatype":"UINT8","data":[0,0,0,0]}],
            "outputs":[{"name":"ood_score","parameters":{"binary_data":true}},{"name":"probabilities"}]}"#;
        let (asked, _) = decode(only.as_bytes(), None, GREY2).unwrap();
        let one = Computed { probabilities: &[0.25, 0.75], ood_scores: Some(&[3.0]) };
        let encoded = encode("m", "1", &asked, one, &names);
        let json_len = encoded.json_len.expect("binary asked");
        let head: Value = serde_json::from_slice(&encoded.body[..json_len]).unwrap();
        assert_eq!(head["outputs"][0]["name"], "ood_score");
        assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 4);
        assert_eq!(head["outputs"][1]["data"], json!([0.25, 0.75]));
        assert_eq!(&encoded.body[json_len..], 3.0f32.to_le_bytes());
        assert!(check_available(&asked, false).unwrap_err().message.contains("train it again"));
        assert!(check_available(&asked, true).is_ok());
        let k = r#"{"inputs":[{"name":"images","shape":[1,4],"datatype":"UINT8","data":[0,0,0,0]}],
            "outputs":[{"name":"ood_score","parameters":{"classification":2}}]}"#;
        assert!(error_of(k).contains("takes no classification"));
    }
}
