//! Keys on disk, ascending and each once: anonymous temp files that can be read again and again, by
//! several readers at once. For key sets that grow with the table or the write rate: `--keys-file`
//! and `--since` of a check, the keys a reindex re-projects, the drift it repairs. [`KeyFile::sort`]
//! puts keys of any order there in runs of bounded size, merged.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

use anyhow::bail;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::model::{Key, KeyRange};

/// Every key: what [`KeyFile::chunks`] reads.
const FULL: KeyRange = KeyRange {
    after: None,
    until: None,
};

/// Keys kept in memory at a time by [`KeyFile::sort`] before they are sorted into a run on disk.
const SORT_RUN: usize = 1 << 18;

/// Reads a file from its start with positioned reads (`pread`), so that several readers of one file
/// (the sift tasks of a parallel pass all read the re-projected keys) never move each other's offset.
pub(crate) struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl<'a> ReadAt<'a> {
    pub(crate) fn new(file: &'a File) -> ReadAt<'a> {
        ReadAt { file, offset: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A key as a tag byte (0: integer, 1: text) and its bytes: little-endian `i64`, or length and UTF-8.
pub(crate) fn write_key(writer: &mut impl Write, key: &Key) -> io::Result<()> {
    match key {
        Key::Int(i) => {
            writer.write_all(&[0])?;
            writer.write_all(&i.to_le_bytes())
        }
        Key::Text(s) => {
            writer.write_all(&[1])?;
            writer.write_all(&(s.len() as u64).to_le_bytes())?;
            writer.write_all(s.as_bytes())
        }
    }
}

/// The next key written by [`write_key`]; None at the end of the file.
pub(crate) fn read_key(reader: &mut impl Read) -> io::Result<Option<Key>> {
    let mut tag = [0u8; 1];
    if reader.read(&mut tag)? == 0 {
        return Ok(None);
    }
    Ok(Some(match tag[0] {
        0 => Key::Int(i64::from_le_bytes(read_array(reader)?)),
        1 => {
            let len = u64::from_le_bytes(read_array(reader)?) as usize;
            let mut bytes = vec![0u8; len];
            reader.read_exact(&mut bytes)?;
            Key::Text(String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?)
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("key file: unknown key tag {other}"),
            ))
        }
    }))
}

/// Keys in ascending order, each once, in an anonymous temp file that can be read again and again:
/// the keys a catch-up re-projects, and the union of them over the passes. On disk because how many
/// rows change during a reindex grows with how long it runs, and so with the table.
#[derive(Debug)]
pub struct KeyFile {
    file: File,
    len: u64,
}

impl KeyFile {
    pub fn empty() -> io::Result<KeyFile> {
        KeyFileWriter::new()?.finish()
    }

    /// Writes the keys of an ascending stream (a repeated key is kept once; a smaller one is an error).
    pub async fn from_stream(mut keys: BoxStream<'_, anyhow::Result<Key>>) -> anyhow::Result<KeyFile> {
        let mut writer = KeyFileWriter::new()?;
        while let Some(key) = keys.next().await.transpose()? {
            writer.push(&key)?;
        }
        Ok(writer.finish()?)
    }

    /// Keys in any order, repeats allowed: sorted in memory a run of [`SORT_RUN`] keys at a time, the
    /// runs parked on disk and merged. The first error of `keys` stops it.
    pub fn sort(keys: impl IntoIterator<Item = anyhow::Result<Key>>) -> anyhow::Result<KeyFile> {
        KeyFile::sort_in_runs(keys, SORT_RUN)
    }

    fn sort_in_runs(keys: impl IntoIterator<Item = anyhow::Result<Key>>, run: usize) -> anyhow::Result<KeyFile> {
        let mut sorter = KeySorter::with_run(run);
        for key in keys {
            sorter.push(key?)?;
        }
        sorter.finish()
    }

    fn sorted(mut keys: Vec<Key>) -> anyhow::Result<KeyFile> {
        keys.sort_unstable();
        let mut writer = KeyFileWriter::new()?;
        for key in &keys {
            writer.push(key)?;
        }
        Ok(writer.finish()?)
    }

    /// Every key of the runs, in order, each once.
    fn merge(runs: &[KeyFile]) -> anyhow::Result<KeyFile> {
        let mut readers = runs.iter().map(KeyFile::keys).collect::<io::Result<Vec<_>>>()?;
        let mut heads = BinaryHeap::new();
        for (i, reader) in readers.iter_mut().enumerate() {
            if let Some(key) = reader.next().transpose()? {
                heads.push(Reverse((key, i)));
            }
        }
        let mut writer = KeyFileWriter::new()?;
        while let Some(Reverse((key, i))) = heads.pop() {
            writer.push(&key)?;
            if let Some(next) = readers[i].next().transpose()? {
                heads.push(Reverse((next, i)));
            }
        }
        Ok(writer.finish()?)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys from the first, in order.
    pub fn keys(&self) -> io::Result<KeyReader<'_>> {
        Ok(KeyReader {
            reader: BufReader::with_capacity(1 << 16, ReadAt::new(&self.file)),
        })
    }

    /// The keys in `range`, in order: those before it are read past (the file has no index), and
    /// reading stops at its end.
    pub fn keys_in<'a>(&'a self, range: &'a KeyRange) -> io::Result<impl Iterator<Item = io::Result<Key>> + 'a> {
        Ok(self
            .keys()?
            .skip_while(move |key| matches!((key, &range.after), (Ok(key), Some(after)) if key <= after))
            .take_while(move |key| !matches!((key, &range.until), (Ok(key), Some(until)) if key > until)))
    }

    /// The keys `size` at a time.
    pub fn chunks(&self, size: usize) -> io::Result<impl Iterator<Item = io::Result<Vec<Key>>> + '_> {
        self.chunks_in(&FULL, size)
    }

    /// The keys in `range`, `size` at a time.
    pub fn chunks_in<'a>(
        &'a self,
        range: &'a KeyRange,
        size: usize,
    ) -> io::Result<impl Iterator<Item = io::Result<Vec<Key>>> + 'a> {
        let mut keys = self.keys_in(range)?;
        let size = size.max(1);
        Ok(std::iter::from_fn(move || {
            let mut chunk = Vec::with_capacity(size.min(self.len as usize));
            for _ in 0..size {
                match keys.next() {
                    Some(Ok(key)) => chunk.push(key),
                    Some(Err(e)) => return Some(Err(e)),
                    None => break,
                }
            }
            (!chunk.is_empty()).then_some(Ok(chunk))
        }))
    }

    /// Every key of either file, in order, each once.
    pub fn union(&self, other: &KeyFile) -> anyhow::Result<KeyFile> {
        let mut writer = KeyFileWriter::new()?;
        let mut a = self.keys()?.peekable();
        let mut b = other.keys()?.peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
                (_, Some(Err(_))) | (None, Some(Ok(_))) => false,
                (Some(Ok(x)), Some(Ok(y))) => x <= y,
            };
            let key = if take_a { a.next() } else { b.next() }.expect("peeked")?;
            writer.push(&key)?;
        }
        Ok(writer.finish()?)
    }
}

pub struct KeyReader<'a> {
    reader: BufReader<ReadAt<'a>>,
}

impl Iterator for KeyReader<'_> {
    type Item = io::Result<Key>;

    fn next(&mut self) -> Option<Self::Item> {
        read_key(&mut self.reader).transpose()
    }
}

/// [`KeyFile::sort`] for keys handed over one at a time (by a parser that finds them as it goes).
pub struct KeySorter {
    run: usize,
    batch: Vec<Key>,
    runs: Vec<KeyFile>,
}

impl Default for KeySorter {
    fn default() -> Self {
        KeySorter::with_run(SORT_RUN)
    }
}

impl KeySorter {
    fn with_run(run: usize) -> KeySorter {
        KeySorter {
            run: run.max(1),
            batch: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, key: Key) -> anyhow::Result<()> {
        self.batch.push(key);
        if self.batch.len() >= self.run {
            self.runs.push(KeyFile::sorted(std::mem::take(&mut self.batch))?);
        }
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<KeyFile> {
        if self.runs.is_empty() {
            return KeyFile::sorted(self.batch);
        }
        if !self.batch.is_empty() {
            self.runs.push(KeyFile::sorted(std::mem::take(&mut self.batch))?);
        }
        KeyFile::merge(&self.runs)
    }
}

/// Writes a [`KeyFile`]: keys ascending (a repeated key is kept once, a smaller one refused).
pub struct KeyFileWriter {
    file: BufWriter<File>,
    last: Option<Key>,
    len: u64,
}

impl KeyFileWriter {
    pub fn new() -> io::Result<KeyFileWriter> {
        Ok(KeyFileWriter {
            file: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            last: None,
            len: 0,
        })
    }

    pub fn push(&mut self, key: &Key) -> anyhow::Result<()> {
        match &self.last {
            Some(last) if key == last => return Ok(()),
            Some(last) if key < last => bail!("keys out of order: {key} after {last}"),
            _ => {}
        }
        write_key(&mut self.file, key)?;
        self.last = Some(key.clone());
        self.len += 1;
        Ok(())
    }

    pub fn finish(self) -> io::Result<KeyFile> {
        Ok(KeyFile {
            file: self.file.into_inner().map_err(|e| e.into_error())?,
            len: self.len,
        })
    }
}

pub(crate) fn read_array<const N: usize>(reader: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Key files for tests, here and in the modules that use them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Integer keys as a stream, as a source hands them over.
    pub(crate) fn keys(items: &[i64]) -> BoxStream<'static, anyhow::Result<Key>> {
        futures::stream::iter(items.iter().map(|&k| Ok(Key::Int(k))).collect::<Vec<_>>()).boxed()
    }

    pub(crate) async fn key_file(items: &[i64]) -> KeyFile {
        KeyFile::from_stream(keys(items)).await.expect("ascending keys")
    }

    pub(crate) fn read_all(file: &KeyFile) -> Vec<Key> {
        file.keys().expect("read").map(|k| k.expect("key")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{key_file, keys, read_all};
    use super::*;

    #[tokio::test]
    async fn readers_of_one_key_file_do_not_move_each_other() {
        let many: Vec<i64> = (0..100_000).collect();
        let file = key_file(&many).await;
        let (mut a, mut b) = (file.keys().expect("read"), file.keys().expect("read"));
        // Interleaved beyond one buffer's worth: each reader keeps its own position.
        for i in 0..many.len() as i64 {
            assert_eq!(a.next().expect("a key").expect("read"), Key::Int(i));
            if i % 3 == 0 {
                assert_eq!(b.next().expect("a key").expect("read"), Key::Int(i / 3));
            }
        }
        assert!(a.next().is_none());
    }

    #[tokio::test]
    async fn key_files_keep_each_key_once_read_again_and_unite() {
        let a = key_file(&[1, 3, 3, 5]).await;
        assert_eq!(a.len(), 3);
        assert_eq!(read_all(&a), read_all(&a), "read again from the start");
        let b = key_file(&[2, 3, 9]).await;
        let union = a.union(&b).expect("union");
        assert_eq!(read_all(&union), [1, 2, 3, 5, 9].map(Key::Int));
        assert_eq!(union.len(), 5);
        let chunks: Vec<Vec<Key>> = union.chunks(2).expect("chunks").map(|c| c.expect("chunk")).collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2], [Key::Int(9)]);
        assert!(KeyFile::from_stream(keys(&[2, 1])).await.is_err(), "out of order");
        assert!(read_all(&KeyFile::empty().unwrap().union(&KeyFile::empty().unwrap()).unwrap()).is_empty());
    }

    #[tokio::test]
    async fn a_range_of_a_key_file_is_read_from_its_first_key_to_its_last() {
        let file = key_file(&(1..=10).collect::<Vec<_>>()).await;
        let range = |after: Option<i64>, until: Option<i64>| KeyRange {
            after: after.map(Key::Int),
            until: until.map(Key::Int),
        };
        let read = |r: &KeyRange| -> Vec<Key> { file.keys_in(r).unwrap().map(|k| k.unwrap()).collect() };
        assert_eq!(read(&range(Some(3), Some(6))), [4, 5, 6].map(Key::Int));
        assert_eq!(read(&range(None, Some(2))), [1, 2].map(Key::Int));
        assert_eq!(read(&range(Some(8), None)), [9, 10].map(Key::Int));
        assert_eq!(read(&range(None, None)).len(), 10);
        assert!(read(&range(Some(10), None)).is_empty());
        let chunks: Vec<Vec<Key>> = file
            .chunks_in(&range(Some(2), Some(7)), 2)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(
            chunks,
            [
                vec![Key::Int(3), Key::Int(4)],
                vec![Key::Int(5), Key::Int(6)],
                vec![Key::Int(7)]
            ]
        );
    }

    #[test]
    fn sorting_in_runs_merges_them_in_order_once_each() {
        let shuffled: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1000).chain([5, 5, 999]).collect();
        let sorted = KeyFile::sort_in_runs(shuffled.iter().map(|&k| Ok(Key::Int(k))), 64).expect("sort");
        assert_eq!(sorted.len(), 1000);
        assert_eq!(read_all(&sorted), (0..1000).map(Key::Int).collect::<Vec<_>>());
        // Text keys in byte order; one run.
        let texts = ["é", "b", "Z", "a", "b"].map(|t| Ok(Key::Text(t.into())));
        let sorted = KeyFile::sort(texts).expect("sort");
        let read: Vec<String> = read_all(&sorted).iter().map(Key::doc_id).collect();
        assert_eq!(read, ["Z", "a", "b", "é"]);
        // The first error stops it.
        let bad = [
            Ok(Key::Int(1)),
            Err(anyhow::anyhow!("line 2: not a key")),
            Ok(Key::Int(3)),
        ];
        assert!(KeyFile::sort(bad).unwrap_err().to_string().contains("line 2"));
    }
}
