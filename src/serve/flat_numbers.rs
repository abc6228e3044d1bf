//! A JSON array of numbers, flat or nested to any depth, read straight into one flat vector
//! (row-major), as the Open Inference Protocol allows tensor data to be sent either way.
//!
//! The tensor data is most of an infer request, so it is not read element by element through
//! serde: serde_json only checks that it is well-formed JSON and hands over its text, which one
//! pass here turns into numbers, taking plain integers (pixels) without a float parse.

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use serde_json::value::RawValue;

/// Deepest nesting accepted (a 4-D tensor needs 4).
const MAX_DEPTH: usize = 8;
/// Longest run of digits read as an integer without the float parser (exact in an f64).
const FAST_DIGITS: usize = 15;

/// Numbers of a possibly nested JSON array, flattened in order.
#[derive(Debug, Default, PartialEq)]
pub struct FlatNumbers(pub Vec<f64>);

impl<'de> Deserialize<'de> for FlatNumbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &RawValue = Deserialize::deserialize(deserializer)?;
        flatten(raw.get()).map(FlatNumbers).map_err(D::Error::custom)
    }
}

/// The numbers of `json`, a well-formed JSON value, if it is an array of numbers and arrays.
fn flatten(json: &str) -> Result<Vec<f64>, String> {
    let bytes = json.as_bytes();
    if bytes.first() != Some(&b'[') {
        return Err(format!("expected an array of numbers (possibly nested), found {}", what_starts(bytes)));
    }
    let capacity = bytes.iter().filter(|&&b| b == b',').count() + 1;
    match integers(bytes, capacity) {
        Some(values) => Ok(values),
        None => numbers(json, capacity),
    }
}

/// The common case in one branch-light pass: arrays of integers of up to [`FAST_DIGITS`] digits
/// within [`MAX_DEPTH`] levels; `None` for anything else (for [`numbers`] to read or reject).
fn integers(bytes: &[u8], capacity: usize) -> Option<Vec<f64>> {
    let mut values = Vec::with_capacity(capacity);
    let (mut magnitude, mut digits, mut negative, mut depth) = (0u64, 0, false, 0);
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit < 10 {
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(digit));
            digits += 1;
            continue;
        }
        if digits > 0 {
            if digits > FAST_DIGITS {
                return None;
            }
            values.push(if negative { -(magnitude as f64) } else { magnitude as f64 });
            (magnitude, digits, negative) = (0, 0, false);
        }
        match byte {
            b',' | b' ' | b'\t' | b'\n' | b'\r' => {}
            b'-' => negative = true,
            b'[' if depth < MAX_DEPTH => depth += 1,
            b']' => depth -= 1,
            _ => return None,
        }
    }
    Some(values)
}

/// Any well-formed JSON array of numbers and arrays, or what is wrong with it.
fn numbers(json: &str, capacity: usize) -> Result<Vec<f64>, String> {
    let bytes = json.as_bytes();
    let mut values = Vec::with_capacity(capacity);
    let (mut depth, mut at) = (0, 0);
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'-' | b'0'..=b'9' => {
                let (value, end) = number(json, at);
                values.push(value);
                at = end;
                continue;
            }
            b',' | b' ' | b'\t' | b'\n' | b'\r' => {}
            b'[' if depth == MAX_DEPTH => return Err(format!("data nested deeper than {MAX_DEPTH} levels")),
            b'[' => depth += 1,
            b']' => depth -= 1,
            _ => {
                return Err(format!(
                    "expected a number or an array of numbers at element {}, found {}",
                    values.len(),
                    what_starts(&bytes[at..])
                ));
            }
        }
        at += 1;
    }
    Ok(values)
}

/// The well-formed JSON number starting at byte `start` of `json`, and where it ends.
fn number(json: &str, start: usize) -> (f64, usize) {
    let bytes = json.as_bytes();
    let end = start + bytes[start..].iter().position(|b| !is_number_byte(*b)).unwrap_or(bytes.len() - start);
    (json[start..end].parse().unwrap_or(f64::NAN), end)
}

/// Whether `byte` can be part of a JSON number.
fn is_number_byte(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Names the JSON value that starts `bytes`, for an error message.
fn what_starts(bytes: &[u8]) -> &'static str {
    match bytes.first() {
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<f64>, String> {
        serde_json::from_str::<FlatNumbers>(json).map(|f| f.0).map_err(|e| e.to_string())
    }

    #[test]
    fn flattens_nested_arrays_in_row_major_order() {
        assert_eq!(parse("[1, 2.5, -3]").unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse("[[1,2],[3,[4,5]]]").unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(parse("[]").unwrap(), Vec::<f64>::new());
        assert_eq!(parse("[[],[[]]]").unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn reads_every_json_number_form_exactly() {
        let text = "[0, -0, 7, -12, 255, 1.5, -2.25e2, 1E-3, 3e+2, 123456789012345, 1234567890123456789, 0.1, \
                    999999999999999, 1000000000000000, 12345678901234567890123, 2.2250738585072014e-308]";
        let want: Vec<f64> = serde_json::from_str::<Vec<f64>>(text).unwrap();
        let got = parse(text).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(parse(" [ [ 1 ,2 ] ,\n\t[3] ] ").unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn rejects_non_numbers_and_deep_nesting() {
        for bad in ["[true]", "[null, 1]", r#"[{"a": 1}]"#, r#"{"a": [1]}"#, "[1, [2, false]]", "3", r#""12""#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("[1, 2").is_err() && parse("[1 2]").is_err() && parse("[01]").is_err() && parse("[1.]").is_err());
        assert!(parse("[1, 2]]").is_err() && parse("[1,]").is_err() && parse("[-]").is_err() && parse("[1e]").is_err());
        let error = parse(r#"[1,"2"]"#).unwrap_err();
        assert!(error.contains("a number or an array of numbers at element 1, found a string"), "{error}");
        assert!(parse("[1,null]").unwrap_err().contains("found null"));
        assert!(parse("[[1],[true]]").unwrap_err().contains("element 1, found a boolean"));
        assert!(parse("3").unwrap_err().contains("expected an array"));
        assert!(parse(&format!("{}1{}", "[".repeat(20), "]".repeat(20))).unwrap_err().contains("nested deeper"));
        assert!(parse(&format!("{}1{}", "[".repeat(8), "]".repeat(8))).is_ok());
    }
}
