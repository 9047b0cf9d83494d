//! The little CBOR (RFC 8949) WebAuthn needs: an authenticator's attestation object and its
//! COSE public key. Definite lengths only (CTAP2's canonical form never uses others), at most
//! 16 levels deep, and every length checked against what is left, so a hostile input is
//! refused rather than read past its end or allowed to allocate what it claims.

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major types 0 and 1, as one signed integer (WebAuthn's never exceed `i64`).
    Int(i64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in the order given.
    Map(Vec<(Value, Value)>),
    /// `false`, `true`.
    Bool(bool),
    /// `null`, `undefined`.
    Null,
}

/// Why the bytes are not the CBOR this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR: {0}")]
pub struct CborError(pub &'static str);

const MAX_DEPTH: usize = 16;

impl Value {
    /// The entry of a map under the integer key `key`.
    pub fn int_key(&self, key: i64) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| *k == Value::Int(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entry of a map under the text key `key`.
    pub fn text_key(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Decodes one value at the start of `input`; answers it and how many bytes it took (the
/// rest, in authenticator data, is what follows the key).
pub fn decode(input: &[u8]) -> Result<(Value, usize), CborError> {
    let mut reader = Reader { input, pos: 0 };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// Decodes `input`, which must hold exactly one value.
pub fn decode_all(input: &[u8]) -> Result<Value, CborError> {
    let (value, used) = decode(input)?;
    if used != input.len() {
        return Err(CborError("bytes after the value"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(CborError("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.input.len())
            .ok_or(CborError("length past the end"))?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The argument of a head whose low 5 bits are `info`.
    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            _ => return Err(CborError("indefinite or reserved length")),
        })
    }

    /// A count of items, bounded by the bytes left (each item takes at least one byte), so a
    /// claimed count never allocates more than the input could fill.
    fn count(&mut self, info: u8, per_item: usize) -> Result<usize, CborError> {
        let n = self.argument(info)?;
        let left = (self.input.len() - self.pos) as u64;
        if n.saturating_mul(per_item as u64) > left {
            return Err(CborError("more items than bytes"));
        }
        usize::try_from(n).map_err(|_| CborError("too many items"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError("nested too deeply"));
        }
        let head = self.byte()?;
        let (major, info) = (head >> 5, head & 0x1f);
        Ok(match major {
            0 => Value::Int(
                i64::try_from(self.argument(info)?).map_err(|_| CborError("integer too large"))?,
            ),
            1 => {
                let n = i64::try_from(self.argument(info)?)
                    .map_err(|_| CborError("integer too large"))?;
                Value::Int(-1 - n)
            }
            2 => {
                let n = self.argument(info)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.argument(info)?;
                let text = std::str::from_utf8(self.take(n)?)
                    .map_err(|_| CborError("text is not UTF-8"))?;
                Value::Text(text.to_string())
            }
            4 => {
                let n = self.count(info, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.count(info, 2)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.value(depth + 1)?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            // Tags: WebAuthn's structures have none.
            6 => return Err(CborError("tags are not expected")),
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                _ => return Err(CborError("floats and other simple values are not expected")),
            },
        })
    }
}

/// Encodes `value` canonically enough for tests and for storing a key (definite lengths,
/// shortest heads, map entries in the order given).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Int(i) if *i >= 0 => head(out, 0, *i as u64),
        Value::Int(i) => head(out, 1, (-1 - *i) as u64),
        Value::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend(b);
        }
        Value::Text(t) => {
            head(out, 3, t.len() as u64);
            out.extend(t.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            for item in items {
                write(out, item);
            }
        }
        Value::Map(entries) => {
            head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                write(out, k);
                write(out, v);
            }
        }
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Null => out.push(0xf6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rfc_examples() {
        assert_eq!(decode_all(&[0x00]).unwrap(), Value::Int(0));
        assert_eq!(decode_all(&[0x18, 0x64]).unwrap(), Value::Int(100));
        assert_eq!(decode_all(&[0x38, 0x63]).unwrap(), Value::Int(-100));
        assert_eq!(decode_all(&[0x26]).unwrap(), Value::Int(-7));
        assert_eq!(decode_all(&[0x39, 0x01, 0x00]).unwrap(), Value::Int(-257));
        assert_eq!(
            decode_all(&[0x44, 1, 2, 3, 4]).unwrap(),
            Value::Bytes(vec![1, 2, 3, 4])
        );
        assert_eq!(
            decode_all(&[0x64, b'I', b'E', b'T', b'F']).unwrap(),
            Value::Text("IETF".into())
        );
        assert_eq!(
            decode_all(&[0xa2, 0x01, 0x02, 0x03, 0x04]).unwrap(),
            Value::Map(vec![
                (Value::Int(1), Value::Int(2)),
                (Value::Int(3), Value::Int(4))
            ])
        );
        assert_eq!(decode_all(&[0xf5]).unwrap(), Value::Bool(true));
    }

    #[test]
    fn round_trips_and_reports_what_it_used() {
        let v = Value::Map(vec![
            (Value::Text("fmt".into()), Value::Text("none".into())),
            (Value::Text("attStmt".into()), Value::Map(vec![])),
            (Value::Int(-2), Value::Bytes(vec![7; 300])),
            (Value::Int(3), Value::Int(-257)),
            (
                Value::Int(4),
                Value::Array(vec![Value::Null, Value::Bool(false)]),
            ),
        ]);
        let mut bytes = encode(&v);
        let len = bytes.len();
        bytes.extend([0xde, 0xad]);
        assert_eq!(decode(&bytes).unwrap(), (v, len));
        assert!(decode_all(&bytes).is_err());
    }

    #[test]
    fn refuses_hostile_input_without_panicking() {
        // Truncated at every byte, and every single-byte corruption, of a real-shaped value.
        let good = encode(&Value::Map(vec![
            (Value::Int(1), Value::Int(2)),
            (Value::Int(-2), Value::Bytes(vec![9; 32])),
            (Value::Text("t".into()), Value::Array(vec![Value::Int(5)])),
        ]));
        for cut in 0..good.len() {
            assert!(decode_all(&good[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..good.len() {
            for b in [0x00, 0x1f, 0x5b, 0x7f, 0x9f, 0xbf, 0xdf, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(&bad);
            }
        }
        // A huge claimed length or count allocates nothing.
        assert!(decode(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]).is_err());
        // Indefinite lengths, tags and floats are not WebAuthn's.
        assert!(decode(&[0x5f, 0x41, 0x00, 0xff]).is_err());
        assert!(decode(&[0xc1, 0x00]).is_err());
        assert!(decode(&[0xf9, 0x3c, 0x00]).is_err());
        // Deep nesting stops.
        assert!(decode(&[0x81; 64]).is_err());
    }
}
