//! Named f32 tensors in a safetensors file, written atomically and read back with checks.

use crate::error::{Error, Result};
use crate::fsutil;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// A tensor read from a file: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Writes `(name, dims, values)` tensors as little-endian f32.
pub fn write(path: &Path, tensors: &[(String, Vec<usize>, &[f32])]) -> Result<()> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors.iter().zip(&bytes).map(|((name, dims, _), b)| {
        (name.clone(), TensorView::new(Dtype::F32, dims.clone(), b).expect("tensor values match their shape"))
    });
    let encoded = safetensors::serialize(views, None).map_err(|e| Error::format(path, e.to_string()))?;
    fsutil::write_atomic(path, |out| out.write_all(&encoded))
}

/// Largest safetensors header read (names, shapes and offsets of the tensors).
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Reads every tensor of a safetensors file, requiring f32, where the file may hold at most
/// `max_values` values (a larger file is refused before it is read).
pub fn read(path: &Path, max_values: usize) -> Result<BTreeMap<String, Tensor>> {
    let bytes = fsutil::read_at_most(path, 8 + MAX_HEADER_BYTES + 4 * max_values as u64)?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for name in st.names() {
        let view = st.tensor(name).map_err(|e| Error::format(path, format!("tensor '{name}': {e}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::format(path, format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(name.to_string(), Tensor { dims: view.shape().to_vec(), values });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        write(&path, &[("a".into(), vec![2, 1], &[1.5, -2.0]), ("b".into(), vec![0], &[])]).unwrap();
        let t = read(&path, 2).unwrap();
        assert_eq!(t["a"], Tensor { dims: vec![2, 1], values: vec![1.5, -2.0] });
        assert!(t["b"].values.is_empty());
        let big = dir.path().join("big.safetensors");
        write(&big, &[("a".into(), vec![300_000], &vec![0.5; 300_000])]).unwrap();
        let err = read(&big, 1000).unwrap_err().to_string();
        assert!(err.contains("big.safetensors") && err.contains("more than the 1052584 this file may hold"), "{err}");
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(read(&path, 2).unwrap_err().to_string().contains("not a safetensors file"));
    }
}
