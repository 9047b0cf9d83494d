//! The safetensors format, as far as a static model needs it: an 8-byte little-endian header
//! length, a JSON header naming each tensor's dtype, shape and byte range, then the bytes.

use std::collections::HashMap;

use serde::Deserialize;

/// The header's entry for one tensor.
#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The tensors of one file, borrowed.
pub(crate) struct Tensors<'a> {
    entries: HashMap<String, Entry>,
    data: &'a [u8],
}

impl<'a> Tensors<'a> {
    /// Reads the header; every tensor's range is checked to lie inside the file and to match
    /// its shape.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Tensors<'a>, String> {
        let head = bytes.get(..8).ok_or("shorter than a safetensors header")?;
        let mut len = [0u8; 8];
        len.copy_from_slice(head);
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|e| e.to_string())?;
        let end = 8usize.checked_add(len).ok_or("header length overflows")?;
        let header = bytes.get(8..end).ok_or("header longer than the file")?;
        let raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
        let data = &bytes[end..];
        let mut entries = HashMap::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| format!("tensor '{name}': {e}"))?;
            let [start, stop] = entry.data_offsets;
            let width = match entry.dtype.as_str() {
                "F64" | "I64" => 8,
                "F32" | "I32" => 4,
                "F16" | "BF16" => 2,
                "I8" | "U8" => 1,
                other => return Err(format!("tensor '{name}': unsupported dtype {other}")),
            };
            let count = entry
                .shape
                .iter()
                .try_fold(1usize, |n, d| n.checked_mul(*d))
                .ok_or_else(|| format!("tensor '{name}': shape overflows"))?;
            if start > stop || stop > data.len() || count.checked_mul(width) != Some(stop - start) {
                return Err(format!(
                    "tensor '{name}': its byte range does not fit its shape or the file"
                ));
            }
            entries.insert(name, entry);
        }
        Ok(Tensors { entries, data })
    }

    /// Whether the file holds `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn entry(&self, name: &str) -> Result<(&Entry, &'a [u8]), String> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| format!("no tensor '{name}'"))?;
        let [start, stop] = entry.data_offsets;
        Ok((entry, &self.data[start..stop]))
    }

    /// A float tensor (any float or int8 dtype, widened) and its shape.
    pub(crate) fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let (entry, bytes) = self.entry(name)?;
        let values: Vec<f32> = match entry.dtype.as_str() {
            "F32" => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "F64" => bytes
                .chunks_exact(8)
                .map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            "F16" => bytes
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            "BF16" => bytes
                .chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                .collect(),
            // model2vec's int8 models store the values unscaled: a common scale changes
            // nothing once the mean is normalized.
            "I8" => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
            other => return Err(format!("tensor '{name}': {other} is not a float type")),
        };
        Ok((entry.shape.clone(), values))
    }

    /// An integer tensor of row indices.
    pub(crate) fn indices(&self, name: &str) -> Result<Vec<u32>, String> {
        let (entry, bytes) = self.entry(name)?;
        let wide: Vec<i64> = match entry.dtype.as_str() {
            "I64" => bytes
                .chunks_exact(8)
                .map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    i64::from_le_bytes(a)
                })
                .collect(),
            "I32" => bytes
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            other => return Err(format!("tensor '{name}': {other} is not an index type")),
        };
        wide.into_iter()
            .map(|v| u32::try_from(v).map_err(|_| format!("tensor '{name}': index {v}")))
            .collect()
    }
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: renormalize.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widens() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!((f16_to_f32(0x0001) - 5.960_464_5e-8).abs() < 1e-12);
    }

    #[test]
    fn damaged_headers_are_refused() {
        assert!(Tensors::parse(b"").is_err());
        assert!(Tensors::parse(&[255; 16]).is_err());
        let header = br#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header);
        file.extend_from_slice(&[0; 8]);
        // Four floats need 16 bytes, not 8.
        assert!(Tensors::parse(&file).is_err());
    }
}
