//! Triton's binary tensor data extension of the Open Inference Protocol: tensor elements as raw
//! little-endian bytes after the JSON header, instead of JSON numbers. UINT8 is one byte per
//! element, FP32 four; BYTES elements are each a 4-byte little-endian length and the bytes.

use super::api_error::ApiError;
use super::oip::{INPUT_NAME, to_pixels};

/// The input's pixels from the binary part of the body: `size` bytes (the input's
/// `binary_data_size`) holding `values` elements of `datatype`, and nothing after them.
pub fn input_pixels(datatype: &str, binary: &[u8], size: u64, values: usize) -> Result<Vec<u8>, ApiError> {
    let width = match datatype {
        "FP32" => 4,
        _ => 1,
    };
    let needed = values * width;
    if size != needed as u64 {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}': parameters.binary_data_size is {size}, its shape needs {needed} bytes of {datatype}"
        )));
    }
    if binary.len() != needed {
        return Err(ApiError::bad_request(format!(
            "input '{INPUT_NAME}': parameters.binary_data_size is {size}, the body has {} bytes of binary data",
            binary.len()
        )));
    }
    match width {
        4 => {
            to_pixels(datatype, binary.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
        }
        _ => to_pixels(datatype, binary.iter().map(|&b| f64::from(b))),
    }
}

/// FP32 elements as little-endian bytes.
pub fn fp32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// BYTES elements: each a 4-byte little-endian length followed by the bytes.
pub fn bytes_elements(strings: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(strings.iter().map(|s| 4 + s.len()).sum());
    for s in strings {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_read_as_declared_and_sizes_checked() {
        assert_eq!(input_pixels("UINT8", &[0, 7, 255], 3, 3).unwrap(), [0, 7, 255]);
        let fp32: Vec<u8> = [0.0f32, 1.0, 0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(input_pixels("FP32", &fp32, 12, 3).unwrap(), [0, 255, 128]);
        let err = input_pixels("FP32", &fp32, 3, 3).unwrap_err().message;
        assert!(err.contains("binary_data_size is 3, its shape needs 12 bytes of FP32"), "{err}");
        let err = input_pixels("UINT8", &[1, 2], 3, 3).unwrap_err().message;
        assert!(err.contains("the body has 2 bytes of binary data"), "{err}");
        let err = input_pixels("FP32", &2.0f32.to_le_bytes(), 4, 1).unwrap_err().message;
        assert!(err.contains("element 0 is 2"), "{err}");
        assert!(input_pixels("INT64", &[0; 8], 1, 1).is_err());
    }

    #[test]
    fn outputs_are_little_endian_and_strings_length_prefixed() {
        assert_eq!(fp32_bytes(&[1.0]), 1.0f32.to_le_bytes());
        assert_eq!(bytes_elements(&["ab".into(), "".into()]), [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
    }
}
