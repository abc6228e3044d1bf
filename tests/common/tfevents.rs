//! An independent reader of TensorBoard event files, written in the tests from the formats'
//! specs (TFRecord framing with masked CRC-32C; protobuf wire format of Event, Summary and the
//! HParams plugin data), not with the library's own types.

/// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(data: &[u8]) -> u32 {
    let c = crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Splits a TFRecord file into payloads, checking both CRCs of every record.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked(len_bytes), "length CRC");
        let payload = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(crc, masked(payload), "payload CRC");
        out.push(payload.to_vec());
        at += 16 + len;
    }
    out
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// A protobuf field value: varint, fixed64, length-delimited bytes or fixed32.
#[derive(Debug)]
pub enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

pub fn fields(b: &[u8]) -> Vec<(u64, Field)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at);
        let field = match key & 7 {
            0 => Field::Varint(varint(b, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(b[at - 8..at].try_into().unwrap())
            }
            2 => {
                let len = varint(b, &mut at) as usize;
                at += len;
                Field::Bytes(b[at - len..at].to_vec())
            }
            5 => {
                at += 4;
                Field::Fixed32(b[at - 4..at].try_into().unwrap())
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((key >> 3, field));
    }
    out
}

/// What a summary value holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `simple_value`.
    Scalar(f32),
    /// `image`: width, height, encoded bytes.
    Image(i64, i64, Vec<u8>),
    /// A plugin's value: plugin name and its content bytes (from the metadata).
    Plugin(String, Vec<u8>),
}

pub fn bytes_field(f: &[(u64, Field)], number: u64) -> Option<Vec<u8>> {
    f.iter().find_map(|(n, v)| match v {
        Field::Bytes(b) if *n == number => Some(b.clone()),
        _ => None,
    })
}

pub fn varint_field(f: &[(u64, Field)], number: u64) -> Option<u64> {
    f.iter().find_map(|(n, v)| match v {
        Field::Varint(x) if *n == number => Some(*x),
        _ => None,
    })
}

fn payload(value: &[(u64, Field)]) -> Payload {
    if let Some(x) = value.iter().find_map(|(n, v)| match v {
        Field::Fixed32(x) if *n == 2 => Some(f32::from_le_bytes(*x)),
        _ => None,
    }) {
        return Payload::Scalar(x);
    }
    if let Some(image) = bytes_field(value, 4) {
        let f = fields(&image);
        let (h, w) = (varint_field(&f, 1).unwrap() as i64, varint_field(&f, 2).unwrap() as i64);
        return Payload::Image(w, h, bytes_field(&f, 4).unwrap());
    }
    let metadata = fields(&bytes_field(value, 9).expect("a value without scalar or image has metadata"));
    let plugin = fields(&bytes_field(&metadata, 1).unwrap());
    let name = String::from_utf8(bytes_field(&plugin, 1).unwrap()).unwrap();
    Payload::Plugin(name, bytes_field(&plugin, 2).unwrap_or_default())
}

/// `(step, [(tag, payload)])` of every summary event of the one event file in `dir`, after
/// checking the file-version event and every wall time.
pub fn summaries(dir: &std::path::Path) -> Vec<(i64, Vec<(String, Payload)>)> {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."));
    let events = records(&std::fs::read(&files[0]).unwrap());
    for event in &events {
        let wall = fields(event).into_iter().find_map(|(n, v)| match (n, v) {
            (1, Field::Fixed64(b)) => Some(f64::from_le_bytes(b)),
            _ => None,
        });
        assert!(wall.is_some_and(|t| t > 1.6e9), "wall_time is seconds since 1970");
    }
    let first = fields(&events[0]);
    assert!(first.iter().any(|(n, f)| *n == 3 && matches!(f, Field::Bytes(v) if v == b"brain.Event:2")));
    events[1..]
        .iter()
        .map(|e| {
            let f = fields(e);
            let step = varint_field(&f, 2).unwrap_or(0) as i64;
            let values = fields(&bytes_field(&f, 5).unwrap())
                .into_iter()
                .map(|(n, v)| {
                    assert_eq!(n, 1);
                    let Field::Bytes(value) = v else { panic!("value is a message") };
                    let vf = fields(&value);
                    (String::from_utf8(bytes_field(&vf, 1).unwrap()).unwrap(), payload(&vf))
                })
                .collect();
            (step, values)
        })
        .collect()
}

/// The scalar values of each summary event.
pub fn scalars(dir: &std::path::Path) -> Vec<(i64, Vec<(String, f32)>)> {
    summaries(dir)
        .into_iter()
        .map(|(step, values)| {
            let scalars = values
                .into_iter()
                .filter_map(|(tag, p)| match p {
                    Payload::Scalar(x) => Some((tag, x)),
                    _ => None,
                })
                .collect::<Vec<_>>();
            (step, scalars)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}
