//! Splits a byte stream into the JSON text of individual records, without holding more than
//! one record in memory: the S3 delivery envelope `{"Records":[...]}` (streamed element by
//! element), a JSON array of records, or a sequence of JSON values (NDJSON).
//!
//! Why not `serde_json::StreamDeserializer`: it cannot descend into one huge top-level object
//! and hand out its array elements one at a time, and its reader path copies byte by byte.
//! This splitter only tracks string and nesting state; each record's text is then parsed
//! with serde_json (`node::parse`), which also keeps the exact bytes for `event.original`.

use std::io::{self, BufRead};

/// The JSON text of one record and where it started in the (decompressed) stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// 0-based position among the records of this input.
    pub index: usize,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Why reading an input stopped early. Records yielded before the error stay valid.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("read error at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("truncated JSON: the input ends inside record {index} (byte {offset})")]
    Truncated { index: usize, offset: u64 },
    #[error("not JSON: the input starts with byte 0x{byte:02x} (expected `{{` or `[`)")]
    NotJson { byte: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Between top-level values.
    Top,
    /// Inside an array of records; `envelope` when it is the `Records` of an envelope.
    InArray {
        envelope: bool,
    },
    /// After the envelope's `Records` array: the rest of the envelope object is skipped.
    EnvelopeRest,
    Done,
}

/// Nesting and string state of the value being captured.
#[derive(Default)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Advance over `buf`; the end position (exclusive) once the value closes.
    fn feed(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < buf.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => return None,
                    Some(j) => {
                        i += j;
                        if buf[i] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return Some(i + 1);
                            }
                        }
                    }
                }
            } else {
                match buf[i] {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        None
    }
}

pub struct RecordSplitter<R> {
    reader: R,
    state: State,
    offset: u64,
    index: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<R: BufRead> RecordSplitter<R> {
    pub fn new(reader: R) -> Self {
        RecordSplitter {
            reader,
            state: State::Top,
            offset: 0,
            index: 0,
        }
    }

    /// Decompressed bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn io(&self, source: io::Error) -> SplitError {
        SplitError::Io {
            offset: self.offset,
            source,
        }
    }

    /// The buffered bytes, reading more when empty (empty at end of input).
    fn fill(&mut self) -> Result<&[u8], SplitError> {
        loop {
            match self.reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
                Ok(_) => break,
            }
        }
        let offset = self.offset;
        self.reader
            .fill_buf()
            .map_err(|source| SplitError::Io { offset, source })
    }

    fn consume(&mut self, n: usize) {
        self.reader.consume(n);
        self.offset += n as u64;
    }

    /// Skip whitespace (and a UTF-8 byte-order mark at the very start); the next byte.
    fn peek(&mut self) -> Result<Option<u8>, SplitError> {
        loop {
            let at_start = self.offset == 0;
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(None);
            }
            if at_start && buf.starts_with(&[0xef, 0xbb, 0xbf]) {
                self.consume(3);
                continue;
            }
            let skip = buf.iter().take_while(|b| is_ws(**b)).count();
            if skip < buf.len() {
                let next = buf[skip];
                self.consume(skip);
                return Ok(Some(next));
            }
            let n = buf.len();
            self.consume(n);
        }
    }

    /// Append bytes to `out` until `scan` says the value closed.
    fn capture(&mut self, scan: &mut Scan, out: &mut Vec<u8>) -> Result<bool, SplitError> {
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(false);
            }
            match scan.feed(buf) {
                Some(end) => {
                    out.extend_from_slice(&buf[..end]);
                    self.consume(end);
                    return Ok(true);
                }
                None => {
                    out.extend_from_slice(buf);
                    let n = buf.len();
                    self.consume(n);
                }
            }
        }
    }

    /// A number, literal or stray token: up to the next delimiter.
    fn capture_scalar(&mut self, out: &mut Vec<u8>) -> Result<(), SplitError> {
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(());
            }
            let end = buf
                .iter()
                .position(|b| is_ws(*b) || matches!(b, b',' | b']' | b'}' | b'{' | b'[' | b'"'))
                .unwrap_or(buf.len());
            // Always make progress, even on a lone delimiter such as a stray `}`.
            let end = if end == 0 && out.is_empty() { 1 } else { end };
            out.extend_from_slice(&buf[..end]);
            let done = end < buf.len();
            self.consume(end);
            if done {
                return Ok(());
            }
        }
    }

    /// One value as a record.
    fn record(&mut self, first: u8) -> Result<RawRecord, SplitError> {
        let offset = self.offset;
        let index = self.index;
        self.index += 1;
        let mut bytes = Vec::with_capacity(2048);
        if matches!(first, b'{' | b'[' | b'"') {
            if !self.capture(&mut Scan::default(), &mut bytes)? {
                self.state = State::Done;
                return Err(SplitError::Truncated { index, offset });
            }
        } else {
            self.capture_scalar(&mut bytes)?;
        }
        Ok(RawRecord {
            index,
            offset,
            bytes,
        })
    }

    /// At a top-level `{`: enter the envelope's `Records` array, or capture a whole record.
    fn object(&mut self) -> Result<Option<RawRecord>, SplitError> {
        let offset = self.offset;
        let mut bytes = Vec::with_capacity(2048);
        bytes.push(b'{');
        self.consume(1);
        let mut scan = Scan {
            depth: 1,
            ..Scan::default()
        };
        if self.peek()? == Some(b'"') {
            let mut key = Vec::new();
            let mut key_scan = Scan::default();
            if !self.capture(&mut key_scan, &mut key)? {
                return self.truncated(offset).map(|_| None);
            }
            if key == b"\"Records\"" && self.peek()? == Some(b':') {
                self.consume(1);
                if self.peek()? == Some(b'[') {
                    self.consume(1);
                    self.state = State::InArray { envelope: true };
                    return Ok(None);
                }
                key.push(b':');
            }
            bytes.extend_from_slice(&key);
        }
        if !self.capture(&mut scan, &mut bytes)? {
            return self.truncated(offset).map(|_| None);
        }
        let index = self.index;
        self.index += 1;
        Ok(Some(RawRecord {
            index,
            offset,
            bytes,
        }))
    }

    fn truncated(&mut self, offset: u64) -> Result<(), SplitError> {
        self.state = State::Done;
        Err(SplitError::Truncated {
            index: self.index,
            offset,
        })
    }

    fn step(&mut self) -> Result<Option<RawRecord>, SplitError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Top => match self.peek()? {
                    None => {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    Some(b'[') => {
                        self.consume(1);
                        self.state = State::InArray { envelope: false };
                    }
                    Some(b'{') => {
                        if let Some(record) = self.object()? {
                            return Ok(Some(record));
                        }
                    }
                    Some(byte) if self.index == 0 && byte != b'"' => {
                        self.state = State::Done;
                        return Err(SplitError::NotJson { byte });
                    }
                    Some(byte) => return self.record(byte).map(Some),
                },
                State::InArray { envelope } => match self.peek()? {
                    None => return self.truncated(self.offset).map(|_| None),
                    Some(b']') => {
                        self.consume(1);
                        self.state = if envelope {
                            State::EnvelopeRest
                        } else {
                            State::Top
                        };
                    }
                    Some(b',') => self.consume(1),
                    Some(byte) => return self.record(byte).map(Some),
                },
                State::EnvelopeRest => {
                    let mut rest = Vec::new();
                    let mut scan = Scan {
                        depth: 1,
                        ..Scan::default()
                    };
                    if !self.capture(&mut scan, &mut rest)? {
                        return self.truncated(self.offset).map(|_| None);
                    }
                    self.state = State::Top;
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for RecordSplitter<R> {
    type Item = Result<RawRecord, SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(record) => record.map(Ok),
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<Result<String, String>> {
        RecordSplitter::new(text.as_bytes())
            .map(|r| {
                r.map(|r| String::from_utf8(r.bytes).unwrap())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn envelope_array_and_ndjson() {
        let ok = |v: &[&str]| v.iter().map(|s| Ok(s.to_string())).collect::<Vec<_>>();
        assert_eq!(
            split(r#"{"Records":[{"a":"]}"},{"b":[1,{}]}]}"#),
            ok(&[r#"{"a":"]}"}"#, r#"{"b":[1,{}]}"#])
        );
        assert_eq!(split(" {\"Records\" : [ ] , \"x\": {\"y\":1}}"), ok(&[]));
        assert_eq!(
            split("[{\"a\":1}, 2 ,\"s\"]"),
            ok(&["{\"a\":1}", "2", "\"s\""])
        );
        assert_eq!(
            split("{\"a\":\"x\\\"}\"}\n{\"b\":2}\n"),
            ok(&["{\"a\":\"x\\\"}\"}", "{\"b\":2}"])
        );
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let out = split(r#"{"Records":[{"a":1},{"b":"#);
        assert_eq!(out[0], Ok("{\"a\":1}".to_string()));
        assert!(out[1].as_ref().unwrap_err().contains("truncated"));
        assert!(
            split("\u{1}binary")[0]
                .as_ref()
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
