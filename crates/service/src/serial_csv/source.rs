//! The byte source under the CSV parser: it stops at a NUL byte and keeps track of line
//! breaks, so rows get the line numbers an editor shows (the `csv` crate counts only `\n`
//! and reports where it started reading, which is before skipped blank lines and, with CRLF,
//! on the previous line).

use std::collections::VecDeque;
use std::io::{self, Read};

/// Reads `inner`, failing at the first NUL byte and recording where each line ends.
///
/// A line break is `\n`, `\r\n` or a lone `\r`; its offset is that of its last byte. Only
/// the breaks not yet asked about are kept, so memory stays bounded by the parser's
/// read-ahead.
pub(super) struct Source<R> {
    inner: R,
    /// Offset in the file of the first byte handed out (3 after a byte-order mark).
    skipped: u64,
    /// Bytes handed out so far.
    pos: u64,
    /// Offsets (in the bytes handed out) of line breaks not yet counted.
    breaks: VecDeque<u64>,
    /// A `\r` seen as the last byte of a read, not yet known to be lone or CRLF.
    pending_cr: Option<u64>,
    /// Line breaks counted so far.
    counted: u64,
    /// Where the NUL byte was in the file, once seen.
    pub(super) nul_at: Option<u64>,
}

impl<R: Read> Source<R> {
    /// Reads `inner`, whose first byte is at `skipped` in the file.
    pub(super) fn new(inner: R, skipped: u64) -> Self {
        Self {
            inner,
            skipped,
            pos: 0,
            breaks: VecDeque::new(),
            pending_cr: None,
            counted: 0,
            nul_at: None,
        }
    }

    /// The 1-based line of the byte at `offset` (in the bytes handed out). Offsets must be
    /// asked in increasing order and must have been read already.
    pub(super) fn line_of(&mut self, offset: u64) -> u64 {
        while self.breaks.front().is_some_and(|b| *b < offset) {
            self.breaks.pop_front();
            self.counted += 1;
        }
        self.counted + 1
    }

    fn scan(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let at = self.pos + i as u64;
            if let Some(cr) = self.pending_cr.take() {
                if *b == b'\n' {
                    self.breaks.push_back(at);
                    continue;
                }
                self.breaks.push_back(cr);
            }
            match b {
                b'\r' => self.pending_cr = Some(at),
                b'\n' => self.breaks.push_back(at),
                _ => {}
            }
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(cr) = self.pending_cr.take() {
                self.breaks.push_back(cr);
            }
            return Ok(0);
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            self.nul_at = Some(self.skipped + self.pos + i as u64);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "NUL byte"));
        }
        self.scan(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Line breaks inside the cells of a record (quoted cells may span lines).
pub(super) fn breaks_within(record: &csv::ByteRecord) -> u64 {
    let mut count = 0;
    for cell in record {
        let mut after_cr = false;
        for b in cell {
            match b {
                b'\r' => count += 1,
                b'\n' if !after_cr => count += 1,
                _ => {}
            }
            after_cr = *b == b'\r';
        }
    }
    count
}
