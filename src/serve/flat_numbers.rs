//! A JSON array of numbers, flat or nested to any depth, read straight into one flat vector
//! (row-major), as the Open Inference Protocol allows tensor data to be sent either way.

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error, SeqAccess, Visitor};
use std::fmt;

/// Deepest nesting accepted (a 4-D tensor needs 4).
const MAX_DEPTH: usize = 8;

/// Numbers of a possibly nested JSON array, flattened in order.
#[derive(Debug, Default, PartialEq)]
pub struct FlatNumbers(pub Vec<f64>);

impl<'de> Deserialize<'de> for FlatNumbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        deserializer.deserialize_seq(Append { out: &mut values, depth: 1 })?;
        Ok(FlatNumbers(values))
    }
}

/// Appends the numbers of one array (and its sub-arrays) to `out`.
struct Append<'a> {
    out: &'a mut Vec<f64>,
    depth: usize,
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers (possibly nested)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(A::Error::custom(format!("data nested deeper than {MAX_DEPTH} levels")));
        }
        if let Some(hint) = seq.size_hint() {
            self.out.reserve(hint);
        }
        while seq.next_element_seed(Element { out: self.out, depth: self.depth })?.is_some() {}
        Ok(())
    }
}

/// One element: a number, or a nested array.
struct Element<'a> {
    out: &'a mut Vec<f64>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        self.out.push(v as f64);
        Ok(())
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        self.out.push(v as f64);
        Ok(())
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        self.out.push(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Append { out: self.out, depth: self.depth + 1 }.visit_seq(seq)
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
    }

    #[test]
    fn reads_every_json_number_form_exactly() {
        let text = "[0, -0, 7, -12, 255, 1.5, -2.25e2, 1E-3, 3e+2, 123456789012345, 1234567890123456789, 0.1]";
        let want: Vec<f64> = serde_json::from_str::<Vec<f64>>(text).unwrap();
        assert_eq!(parse(text).unwrap(), want);
        assert_eq!(parse(" [ [ 1 ,2 ] ,\n\t[3] ] ").unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn rejects_non_numbers_and_deep_nesting() {
        for bad in ["[true]", "[null, 1]", r#"[{"a": 1}]"#, r#"{"a": [1]}"#, "[1, [2, false]]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("[1, 2").is_err() && parse("[1 2]").is_err() && parse("[01]").is_err() && parse("[1.]").is_err());
        assert!(parse(r#"[1,"2"]"#).unwrap_err().contains("a number or an array"));
        assert!(parse("[1,null]").is_err());
        assert!(parse("3").is_err());
        assert!(parse(&format!("{}1{}", "[".repeat(20), "]".repeat(20))).unwrap_err().contains("nested deeper"));
    }
}
