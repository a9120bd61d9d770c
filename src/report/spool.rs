//! Listed drift records parked in an anonymous temp file until the report's header can be written.
//!
//! One compact JSON record per line (the same text the json report lists), so the json writer copies
//! lines verbatim and junit parses them back. The file has no name and vanishes with the process.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use super::record::{DriftIn, DriftOut};
use crate::model::Drift;

pub(super) struct Spool {
    file: BufWriter<File>,
}

impl Spool {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Spool {
            file: BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?),
        })
    }

    pub(super) fn push(&mut self, drift: &Drift) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, &DriftOut::new(drift))?;
        self.file.write_all(b"\n")
    }

    /// Rewinds for reading back what was pushed.
    pub(super) fn replay(self) -> io::Result<Replay> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Replay {
            reader: BufReader::with_capacity(64 * 1024, file),
            line: String::new(),
        })
    }
}

pub(super) struct Replay {
    reader: BufReader<File>,
    line: String,
}

impl Replay {
    /// The next record's JSON text, without its newline; borrowed until the next call.
    pub(super) fn next_line(&mut self) -> io::Result<Option<&str>> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        Ok(Some(self.line.trim_end_matches('\n')))
    }

    pub(super) fn next_record(&mut self) -> io::Result<Option<DriftIn>> {
        match self.next_line()? {
            None => Ok(None),
            Some(line) => serde_json::from_str(line)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn records_come_back_in_order_with_their_content() {
        let drift = fixtures::drift();
        let mut spool = Spool::new().unwrap();
        for d in &drift {
            spool.push(d).unwrap();
        }
        let mut replay = spool.replay().unwrap();
        let mut back = Vec::new();
        while let Some(record) = replay.next_record().unwrap() {
            back.push(record);
        }
        assert_eq!(back.len(), drift.len());
        for (record, d) in back.iter().zip(&drift) {
            assert_eq!(record.key, d.key.to_json());
            assert_eq!(record.kind, d.kind);
            assert_eq!(record.ids, d.ids);
            assert_eq!(record.diffs.len(), d.diffs.len());
            for (r, f) in record.diffs.iter().zip(&d.diffs) {
                assert_eq!((&r.expected, &r.actual), (&f.expected, &f.actual));
            }
        }
    }
}
