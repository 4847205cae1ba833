//! Records on disk: each framed with its length and checksums, so that reading a file back
//! tells a complete record from a torn one, and a torn tail from damage in the middle.
//!
//! ```text
//!   ┌──────────┬──────────────┬──────────────┬─────────────────┐
//!   │ len: u32 │ body crc: u32│ head crc: u32│ body: len bytes │   (integers little-endian)
//!   └──────────┴──────────────┴──────────────┴─────────────────┘
//!   head crc = CRC-32 of the first 8 bytes; body crc = CRC-32 of the body
//! ```
//!
//! The header has a checksum of its own because a damaged *length* would otherwise send the
//! reader off to a wrong place, where it could take the rest of the file for a torn tail and
//! quietly drop it.
//!
//! **Reading ([`scan`]).** Records are read from the start until one is not whole:
//! - the file ends inside it (a header cut short, or a body longer than what is left): a
//!   **torn tail**, what a crash in the middle of a write leaves;
//! - a checksum fails: if a valid record starts anywhere after it, the damage is in the
//!   **middle** of the file — data after it would be lost — and reading stops with an error
//!   naming the offset ([`Damaged`]); if none does, it is garbage a crash left at the end, a
//!   torn tail too.
//!
//! A torn tail is never an acknowledged write: an answer waits until its record is whole on
//! disk (see [`super::journal`]). So the valid prefix is kept and the tail cut off.

/// Bytes of a record's header.
pub const HEADER_BYTES: usize = 12;

/// The largest body a record may have (1 GiB): a header claiming more is damaged.
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// Appends `body` to `out` as one framed record.
pub fn encode(body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len()).expect("a record's body is at most MAX_BODY_BYTES");
    debug_assert!(body.len() <= MAX_BODY_BYTES);
    let mut head = [0u8; HEADER_BYTES];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..8].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let head_crc = crc32fast::hash(&head[..8]);
    head[8..].copy_from_slice(&head_crc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
}

/// What [`scan`] read from a file.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned<'b> {
    /// Every whole record's body, in order.
    pub records: Vec<&'b [u8]>,
    /// Bytes of whole records: the file is valid up to here.
    pub valid_bytes: usize,
    /// What follows the valid prefix, if anything.
    pub tail: Option<Torn>,
}

/// A torn tail: bytes after the last whole record that are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Torn {
    /// How many bytes.
    pub bytes: usize,
    /// Why they are not a record.
    pub why: TornWhy,
}

/// Why a tail is torn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornWhy {
    /// The file ends inside a record's header.
    ShortHeader,
    /// The file ends inside a record's body.
    ShortBody,
    /// A checksum fails, and no valid record follows.
    Garbage,
}

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.why {
            TornWhy::ShortHeader => "the file ends inside a record's header",
            TornWhy::ShortBody => "the file ends inside a record",
            TornWhy::Garbage => "a checksum fails and no whole record follows",
        };
        write!(f, "{} bytes ({why})", self.bytes)
    }
}

/// Damage in the middle of a file: a record whose checksum fails, with valid records after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damaged {
    /// Where the damaged record starts.
    pub offset: usize,
    /// Where the next valid record starts.
    pub next_valid: usize,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the record at byte {} is damaged (its checksum fails) and valid records follow \
             from byte {}: refusing to drop them",
            self.offset, self.next_valid
        )
    }
}

/// The record starting at `at`, if a whole valid one does: its body and where it ends.
/// `Err` says why not.
fn record_at(data: &[u8], at: usize) -> Result<(&[u8], usize), TornWhy> {
    let Some(head) = data.get(at..at + HEADER_BYTES) else {
        return Err(TornWhy::ShortHeader);
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if crc32fast::hash(&head[..8]) != word(8) {
        return Err(TornWhy::Garbage);
    }
    let len = word(0) as usize;
    if len > MAX_BODY_BYTES {
        return Err(TornWhy::Garbage);
    }
    let start = at + HEADER_BYTES;
    let Some(body) = data.get(start..start + len) else {
        return Err(TornWhy::ShortBody);
    };
    if crc32fast::hash(body) != word(4) {
        return Err(TornWhy::Garbage);
    }
    Ok((body, start + len))
}

/// Reads every whole record of `data` (see the module docs).
pub fn scan(data: &[u8]) -> Result<Scanned<'_>, Damaged> {
    let mut records = vec![];
    let mut at = 0;
    while at < data.len() {
        match record_at(data, at) {
            Ok((body, end)) => {
                records.push(body);
                at = end;
            }
            Err(why) => {
                // Only a failed checksum can hide valid records behind it: a file that ends
                // inside a record has nothing after it.
                if why == TornWhy::Garbage
                    && let Some(next_valid) =
                        (at + 1..data.len()).find(|&i| record_at(data, i).is_ok())
                {
                    return Err(Damaged {
                        offset: at,
                        next_valid,
                    });
                }
                return Ok(Scanned {
                    records,
                    valid_bytes: at,
                    tail: Some(Torn {
                        bytes: data.len() - at,
                        why,
                    }),
                });
            }
        }
    }
    Ok(Scanned {
        records,
        valid_bytes: at,
        tail: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(bodies: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let mut out = vec![];
        let mut ends = vec![];
        for body in bodies {
            encode(body, &mut out);
            ends.push(out.len());
        }
        (out, ends)
    }

    #[test]
    fn an_empty_file_holds_no_records() {
        assert_eq!(
            scan(&[]),
            Ok(Scanned {
                records: vec![],
                valid_bytes: 0,
                tail: None
            })
        );
    }

    #[test]
    fn a_damaged_length_is_not_taken_for_a_torn_tail() {
        let bodies: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 40]).collect();
        let (mut data, ends) = framed(&bodies);
        // The second record's length grows past the end of the file.
        data[ends[0] + 3] ^= 0x80;
        assert_eq!(
            scan(&data),
            Err(Damaged {
                offset: ends[0],
                next_valid: ends[1]
            })
        );
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let (mut data, ends) = framed(&[b"one".to_vec(), b"two".to_vec()]);
        data.extend_from_slice(&[0u8; 100]);
        let scanned = scan(&data).unwrap();
        assert_eq!(scanned.records, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(scanned.valid_bytes, ends[1]);
        assert_eq!(
            scanned.tail,
            Some(Torn {
                bytes: 100,
                why: TornWhy::Garbage
            })
        );
    }

    proptest! {
        /// Whatever was written is read back, record for record.
        #[test]
        fn records_read_back_as_written(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let (data, _) = framed(&bodies);
            let scanned = scan(&data).unwrap();
            prop_assert_eq!(scanned.tail, None);
            prop_assert_eq!(scanned.valid_bytes, data.len());
            let read: Vec<Vec<u8>> = scanned.records.iter().map(|r| r.to_vec()).collect();
            prop_assert_eq!(read, bodies);
        }

        /// A crash at any byte of the file: the records before the cut are read, whole, and
        /// the rest is a torn tail — never an error, never a partial record.
        #[test]
        fn a_crash_at_every_byte_keeps_the_whole_records_before_it(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8)) {
            let (data, ends) = framed(&bodies);
            for cut in 0..=data.len() {
                let scanned = scan(&data[..cut]).unwrap();
                let whole = ends.iter().filter(|&&end| end <= cut).count();
                prop_assert_eq!(scanned.records.len(), whole, "cut at {}", cut);
                let valid = if whole == 0 { 0 } else { ends[whole - 1] };
                prop_assert_eq!(scanned.valid_bytes, valid);
                prop_assert_eq!(scanned.tail.is_some(), cut != valid);
            }
        }

        /// A flipped bit in any record but the last is found, at that record's offset.
        #[test]
        fn a_flipped_bit_in_the_middle_is_an_error_at_its_record(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 2..8),
            which in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let (mut data, ends) = framed(&bodies);
            // Any byte before the last record.
            let last_start = ends[ends.len() - 2];
            let byte = which.index(last_start);
            data[byte] ^= 1 << bit;
            let record = ends.iter().filter(|&&end| end <= byte).count();
            let offset = if record == 0 { 0 } else { ends[record - 1] };
            match scan(&data) {
                Err(damaged) => prop_assert_eq!(damaged.offset, offset),
                Ok(scanned) => prop_assert!(false, "damage at byte {} not found: {:?}", byte, scanned.tail),
            }
        }
    }
}
