//! The verify gate without a second read of the projection.
//!
//! The load knows every document it sent. It keeps `(key, fingerprint)` of each, range by range in key
//! order, in temp files ([`FingerprintWriter`], [`Fingerprints`]). A verify pass then merges four
//! key-ordered inputs ([`sift`]): those fingerprints, the keys re-projected since the watermark, a
//! key-only scan of the write model (cheap: PostgreSQL drops the joins and aggregates the key does not
//! need), and a scan of the new generation, fingerprinted the same way.
//!
//! A key is *settled* when nobody changed its row since the watermark (it is not among the re-projected
//! keys), the write model still has it, and the generation holds exactly one document for it, with the
//! fingerprint of the document the load sent. That document is the projection of the row in the load's
//! snapshot; the row has not changed since, so a check would compute the same document now and find it
//! equal. Every other key is a *candidate*, and the caller decides it the way `recon check --keys`
//! does: both sides read by key and compared by the `[compare]` rules, pending by `updated_at`. A
//! fingerprint can prove a document equal, never call it different: two documents that differ only in
//! field order or a number's spelling become candidates and are compared in full.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::bail;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::diff::Comparator;
use crate::model::Key;
use crate::scale::keyfile::{read_array, read_key, write_key, KeyFile, KeyFileWriter, ReadAt};
use crate::source::{DocStream, KeyRange};

/// Where a generation's fingerprints are kept while it is built: a directory of the machine's temp
/// dir named after the generation and its run's random `scratch` token, readable by this user only.
/// It outlives a crashed run, so that `--resume` on the same machine still has them; it goes with
/// the reindex's end (swap or discard).
pub fn dir_for(index: &str, scratch: &str) -> PathBuf {
    std::env::temp_dir().join(format!("recon-reindex-{index}-{scratch}"))
}

/// Removes a generation's fingerprint directory, if there is one.
pub fn remove_dir(index: &str, scratch: Option<&str>) {
    if let Some(scratch) = scratch {
        let _ = std::fs::remove_dir_all(dir_for(index, scratch));
    }
}

/// The fingerprints a finished load left in `dir`, one file per range; None unless every range's
/// file is there and reads back in key order.
pub fn reopen(dir: &Path, ranges: &[KeyRange]) -> io::Result<Option<Fingerprints>> {
    let mut parts = Vec::with_capacity(ranges.len());
    for (i, range) in ranges.iter().enumerate() {
        match FingerprintWriter::resume(&range_file(dir, i), Keep::All)? {
            Some(writer) => parts.push((range.clone(), writer)),
            None => return Ok(None),
        }
    }
    Fingerprints::new(parts).map(Some)
}

/// The file of range `i` in `dir`.
pub fn range_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("range-{i}.fp"))
}

/// How much of a range's earlier fingerprint file a resumed load keeps.
pub enum Keep<'a> {
    /// The range is done: all of it.
    All,
    /// Up to and including the range's last acknowledged key (nothing when None): what was sent
    /// after it is sent again.
    UpTo(Option<&'a Key>),
}

/// `(key, fingerprint)` pairs of one range, in ascending key order, in a file.
pub struct FingerprintWriter {
    file: BufWriter<File>,
    last: Option<Key>,
    len: u64,
}

impl FingerprintWriter {
    /// In an anonymous temp file.
    pub fn new() -> io::Result<FingerprintWriter> {
        Ok(FingerprintWriter {
            file: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            last: None,
            len: 0,
        })
    }

    /// A fresh file at `path` (readable by this user only), replacing any.
    pub fn create(path: &Path) -> io::Result<FingerprintWriter> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Ok(FingerprintWriter {
            file: BufWriter::with_capacity(1 << 16, file),
            last: None,
            len: 0,
        })
    }

    /// The file an interrupted load left at `path`, cut to what `keep` says and ready for more; None
    /// when there is no such file or it does not read back in key order (the gate then checks in
    /// full). A tail cut short by the crash is dropped with the rest after the kept part.
    pub fn resume(path: &Path, keep: Keep<'_>) -> io::Result<Option<FingerprintWriter>> {
        let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reader = Reader {
            reader: BufReader::with_capacity(1 << 16, ReadAt::new(&file)),
        };
        let (mut last, mut len, mut kept_bytes) = (None::<Key>, 0u64, 0u64);
        // Up to the end, or to a pair the crash cut short.
        while let Ok(Some(pair)) = reader.next_pair() {
            let (key, _) = &pair;
            if last.as_ref().is_some_and(|l| key <= l) {
                return Ok(None);
            }
            if let Keep::UpTo(upto) = &keep {
                if upto.is_none_or(|u| key > u) {
                    break;
                }
            }
            kept_bytes = reader.offset();
            len += 1;
            last = Some(pair.0);
        }
        file.set_len(kept_bytes)?;
        let mut file = file;
        file.seek(SeekFrom::Start(kept_bytes))?;
        Ok(Some(FingerprintWriter {
            file: BufWriter::with_capacity(1 << 16, file),
            last,
            len,
        }))
    }

    /// Hands what is buffered to the file, so that it holds every pair pushed so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Appends one pair; keys must ascend strictly, as the load reads them.
    pub fn push(&mut self, key: &Key, fingerprint: u128) -> Result<(), PushError> {
        if let Some(last) = self.last.as_ref().filter(|last| key <= *last) {
            return Err(PushError::OutOfOrder {
                key: key.clone(),
                last: last.clone(),
            });
        }
        write_key(&mut self.file, key)?;
        self.file.write_all(&fingerprint.to_le_bytes())?;
        self.last = Some(key.clone());
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a pair could not be pushed: the keys are out of order (the load cannot go on: its progress
/// is a last key), or the file could not be written (the load can, without fingerprints).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the load's keys are out of order: {key} after {last}")]
    OutOfOrder { key: Key, last: Key },
    #[error("cannot write the load's fingerprints: {0}")]
    Io(#[from] io::Error),
}

/// The fingerprints of a whole load: one file per range of the load, read again by every pass.
pub struct Fingerprints {
    parts: Vec<Part>,
}

/// The fingerprints of one range.
pub struct Part {
    range: KeyRange,
    file: File,
    len: u64,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Fingerprints({} documents in {} ranges)",
            self.len(),
            self.parts.len()
        )
    }
}

impl Fingerprints {
    /// Each range of the load with its writer, in key order.
    pub fn new(parts: Vec<(KeyRange, FingerprintWriter)>) -> io::Result<Fingerprints> {
        let parts = parts
            .into_iter()
            .map(|(range, writer)| {
                Ok(Part {
                    range,
                    len: writer.len,
                    file: writer.file.into_inner().map_err(|e| e.into_error())?,
                })
            })
            .collect::<io::Result<Vec<Part>>>()?;
        Ok(Fingerprints { parts })
    }

    /// Documents the load sent.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl Part {
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    fn read(&self) -> io::Result<Reader<'_>> {
        Ok(Reader {
            reader: BufReader::with_capacity(1 << 16, ReadAt::new(&self.file)),
        })
    }
}

struct Reader<'a> {
    reader: BufReader<ReadAt<'a>>,
}

impl Reader<'_> {
    /// Bytes consumed so far: the end of the last pair read.
    fn offset(&self) -> u64 {
        self.reader.get_ref().offset() - self.reader.buffer().len() as u64
    }

    fn next_pair(&mut self) -> io::Result<Option<(Key, u128)>> {
        let Some(key) = read_key(&mut self.reader)? else {
            return Ok(None);
        };
        Ok(Some((key, u128::from_le_bytes(read_array(&mut self.reader)?))))
    }
}

/// What [`sift`] found.
pub struct Sifted {
    /// Keys proven in sync by their fingerprint.
    pub settled: u64,
    /// Every other key, ascending: to be compared in full.
    pub candidates: KeyFile,
    /// Keys the write model has now.
    pub rows: u64,
    /// Documents in the generation.
    pub documents: u64,
}

/// A key-ordered input with one item of look-ahead and an order check.
struct Ahead<T> {
    what: &'static str,
    next: Option<(Key, T)>,
    last: Option<Key>,
    /// Several items may carry one key (the generation's duplicates).
    repeats: bool,
}

impl<T> Ahead<T> {
    fn new(what: &'static str, repeats: bool) -> Ahead<T> {
        Ahead {
            what,
            next: None,
            last: None,
            repeats,
        }
    }

    fn offer(&mut self, item: Option<(Key, T)>) -> anyhow::Result<()> {
        if let (Some((key, _)), Some(last)) = (&item, &self.last) {
            if key < last || (key == last && !self.repeats) {
                bail!(
                    "{} out of order: key {key} arrived after {last}; both sides must return keys in ascending \
                     order (text keys in byte order, as PostgreSQL's COLLATE \"C\" and an Elasticsearch keyword sort \
                     give)",
                    self.what
                );
            }
        }
        if let Some((key, _)) = &item {
            self.last = Some(key.clone());
        }
        self.next = item;
        Ok(())
    }

    fn key(&self) -> Option<&Key> {
        self.next.as_ref().map(|(k, _)| k)
    }

    /// The item if it carries `key`.
    fn take_if(&mut self, key: &Key) -> Option<T> {
        if self.key() == Some(key) {
            self.next.take().map(|(_, t)| t)
        } else {
            None
        }
    }
}

/// Merges one range's fingerprints (`part`), the keys re-projected since the watermark (`changed`,
/// those in the range), the write model's keys in the range now (`rows`) and the generation's
/// documents in it (`documents`), all ascending, into settled keys and candidates. Holds one item of
/// each input at a time; the candidates go to a temp file. Counts every key it decides in `progress`.
pub async fn sift(
    part: &Part,
    changed: &KeyFile,
    mut rows: BoxStream<'_, anyhow::Result<Key>>,
    mut documents: DocStream,
    comparator: &Comparator,
    progress: &AtomicU64,
) -> anyhow::Result<Sifted> {
    let mut sent_reader = part.read()?;
    let mut sent: Ahead<u128> = Ahead::new("the load's fingerprints", false);
    let mut row: Ahead<()> = Ahead::new("write model key scan", false);
    let mut doc: Ahead<u128> = Ahead::new("new generation scan", true);
    let mut changed_reader = changed
        .keys()?
        .filter(|k| k.as_ref().map_or(true, |k| part.range.contains(k)));
    let mut changed: Ahead<()> = Ahead::new("the re-projected keys", false);
    let mut candidates = KeyFileWriter::new()?;
    let (mut settled_keys, mut row_keys, mut documents_read) = (0, 0, 0);
    sent.offer(sent_reader.next_pair()?)?;
    row.offer(rows.next().await.transpose()?.map(|k| (k, ())))?;
    doc.offer(next_doc(&mut documents, comparator).await?)?;
    changed.offer(changed_reader.next().transpose()?.map(|k| (k, ())))?;
    loop {
        let key = [sent.key(), row.key(), doc.key(), changed.key()]
            .into_iter()
            .flatten()
            .min()
            .cloned();
        let Some(key) = key else { break };
        let sent_fp = sent.take_if(&key);
        if sent_fp.is_some() {
            sent.offer(sent_reader.next_pair()?)?;
        }
        let present = row.take_if(&key).is_some();
        if present {
            row_keys += 1;
            row.offer(rows.next().await.transpose()?.map(|k| (k, ())))?;
        }
        let mut found = Vec::new();
        while let Some(fp) = doc.take_if(&key) {
            found.push(fp);
            documents_read += 1;
            doc.offer(next_doc(&mut documents, comparator).await?)?;
        }
        let was_changed = changed.take_if(&key).is_some();
        if was_changed {
            changed.offer(changed_reader.next().transpose()?.map(|k| (k, ())))?;
        }
        let settled =
            !was_changed && present && sent_fp.is_some() && found.len() == 1 && found.first() == sent_fp.as_ref();
        if settled {
            settled_keys += 1;
        } else {
            candidates.push(&key)?;
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Sifted {
        settled: settled_keys,
        candidates: candidates.finish()?,
        rows: row_keys,
        documents: documents_read,
    })
}

async fn next_doc(documents: &mut DocStream, comparator: &Comparator) -> anyhow::Result<Option<(Key, u128)>> {
    Ok(documents
        .next()
        .await
        .transpose()?
        .map(|d| (d.key, comparator.fingerprint(&d.doc))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompareConfig;
    use crate::model::Doc;
    use crate::model::KeyedDoc;
    use crate::scale::keyfile::testing::{key_file, keys, read_all};
    use serde_json::{json, Value};

    fn comparator() -> Comparator {
        Comparator::new(&CompareConfig::default()).expect("default rules")
    }

    fn body(n: i64) -> Doc {
        match json!({"orderId": n, "total": format!("{n}.00")}) {
            Value::Object(m) => m.into(),
            _ => unreachable!(),
        }
    }

    /// The load's fingerprints of `keys` as one range.
    fn loaded(keys: &[i64], c: &Comparator) -> Fingerprints {
        let mut w = FingerprintWriter::new().expect("temp file");
        for &k in keys {
            w.push(&Key::Int(k), c.fingerprint(&body(k))).expect("ascending");
        }
        Fingerprints::new(vec![(KeyRange::all(), w)]).expect("file")
    }

    fn docs(items: Vec<(i64, Doc)>) -> DocStream {
        futures::stream::iter(items.into_iter().map(|(k, doc)| {
            Ok(KeyedDoc {
                key: Key::Int(k),
                doc,
                meta: Default::default(),
            })
        }))
        .boxed()
    }

    async fn candidates(sifted: Sifted) -> Vec<Key> {
        read_all(&sifted.candidates)
    }

    #[tokio::test]
    async fn only_unchanged_identical_single_documents_settle() {
        let c = comparator();
        let fps = loaded(&[1, 2, 3, 4, 5, 6, 7, 8], &c);
        assert_eq!(fps.len(), 8);
        let mut changed_doc = body(3);
        changed_doc.insert("total", "9.99");
        // 1 settles; 2 was re-projected; 3 differs; 4 is missing; 5 is twice in the index; 6's row is
        // gone; 7 settles; 8 settles; 9 is a row the load never saw; 10 is a document without a row.
        let generation = docs(vec![
            (1, body(1)),
            (2, body(2)),
            (3, changed_doc),
            (5, body(5)),
            (5, body(5)),
            (6, body(6)),
            (7, body(7)),
            (8, body(8)),
            (10, body(10)),
        ]);
        let changed = key_file(&[2]).await;
        let sifted = sift(
            &fps.parts()[0],
            &changed,
            keys(&[1, 2, 3, 4, 5, 7, 8, 9]),
            generation,
            &c,
            &AtomicU64::new(0),
        )
        .await
        .expect("sift");
        assert_eq!(sifted.settled, 3);
        assert_eq!(sifted.rows, 8);
        assert_eq!(sifted.documents, 9);
        let expect: Vec<Key> = [2, 3, 4, 5, 6, 9, 10].into_iter().map(Key::Int).collect();
        assert_eq!(candidates(sifted).await, expect);
    }

    #[tokio::test]
    async fn a_range_sees_only_its_own_changed_keys() {
        let c = comparator();
        let part = |keys: &[i64]| {
            let mut w = FingerprintWriter::new().expect("temp file");
            for &k in keys {
                w.push(&Key::Int(k), c.fingerprint(&body(k))).expect("ascending");
            }
            w
        };
        let low = KeyRange {
            after: None,
            until: Some(Key::Int(4)),
        };
        let high = KeyRange {
            after: Some(Key::Int(4)),
            until: None,
        };
        let fps = Fingerprints::new(vec![(low, part(&[1, 2, 3, 4])), (high, part(&[5, 6, 7]))]).expect("files");
        assert_eq!(fps.len(), 7);
        let changed = key_file(&[2, 6]).await;
        let sifted = sift(
            &fps.parts()[1],
            &changed,
            keys(&[5, 6, 7]),
            docs(vec![(5, body(5)), (6, body(6)), (7, body(7))]),
            &c,
            &AtomicU64::new(0),
        )
        .await
        .expect("sift");
        assert_eq!(sifted.settled, 2);
        assert_eq!(candidates(sifted).await, [Key::Int(6)]);
    }

    #[tokio::test]
    async fn a_reordered_document_is_a_candidate_not_a_verdict() {
        let c = comparator();
        let fps = loaded(&[1, 2], &c);
        let mut reordered = Doc::new();
        reordered.insert("total", "1.00");
        reordered.insert("orderId", 1i64);
        let sifted = sift(
            &fps.parts()[0],
            &KeyFile::empty().unwrap(),
            keys(&[1, 2]),
            docs(vec![(1, reordered), (2, body(2))]),
            &c,
            &AtomicU64::new(0),
        )
        .await
        .expect("sift");
        assert_eq!(sifted.settled, 1);
        assert_eq!(candidates(sifted).await, [Key::Int(1)]);
    }

    #[tokio::test]
    async fn an_input_out_of_order_stops_the_pass() {
        let c = comparator();
        let fps = loaded(&[1, 2, 3], &c);
        let err = sift(
            &fps.parts()[0],
            &KeyFile::empty().unwrap(),
            keys(&[1, 3, 2]),
            docs(vec![(1, body(1)), (2, body(2)), (3, body(3))]),
            &c,
            &AtomicU64::new(0),
        )
        .await
        .err()
        .expect("out of order");
        assert!(
            err.to_string()
                .contains("write model key scan out of order: key 2 arrived after 3"),
            "{err}"
        );
        let err = sift(
            &fps.parts()[0],
            &KeyFile::empty().unwrap(),
            keys(&[1, 2, 3]),
            docs(vec![(1, body(1)), (3, body(3)), (2, body(2))]),
            &c,
            &AtomicU64::new(0),
        )
        .await
        .err()
        .expect("out of order");
        assert!(err.to_string().contains("new generation scan out of order"), "{err}");
    }

    #[test]
    fn a_resumed_file_keeps_what_was_acknowledged_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().expect("dir");
        let path = range_file(&dir.path().join("gen"), 0);
        let mut w = FingerprintWriter::create(&path).expect("create");
        for k in 1..=10 {
            w.push(&Key::Int(k), k as u128).expect("ascending");
        }
        w.flush().expect("flush");
        drop(w);
        // A crash in the middle of a pair: half of an eleventh one.
        let torn = std::fs::metadata(&path).expect("file").len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(&[0, 11, 0])
            .expect("write");
        // Up to 6 was acknowledged: 7 to 10 are sent again and pushed after it.
        let mut w = FingerprintWriter::resume(&path, Keep::UpTo(Some(&Key::Int(6))))
            .expect("read")
            .expect("the file is there");
        assert_eq!(w.len(), 6);
        assert!(w.push(&Key::Int(6), 0).is_err(), "continues after 6");
        w.push(&Key::Int(7), 70).expect("after 6");
        let fps = Fingerprints::new(vec![(KeyRange::all(), w)]).expect("file");
        let mut r = fps.parts()[0].read().expect("read");
        let pairs: Vec<(Key, u128)> = std::iter::from_fn(|| r.next_pair().expect("read")).collect();
        assert_eq!(pairs.last(), Some(&(Key::Int(7), 70)));
        assert_eq!(pairs.len(), 7);
        // A done range keeps all of it, less the torn tail.
        drop(fps);
        let mut w = FingerprintWriter::create(&path).expect("create");
        for k in 1..=3 {
            w.push(&Key::Int(k), 0).expect("ascending");
        }
        w.flush().expect("flush");
        drop(w);
        let whole = std::fs::metadata(&path).expect("file").len();
        assert!(whole < torn);
        let w = FingerprintWriter::resume(&path, Keep::All)
            .expect("read")
            .expect("there");
        assert_eq!(w.len(), 3);
        // Nothing acknowledged: nothing kept.
        let w = FingerprintWriter::resume(&path, Keep::UpTo(None))
            .expect("read")
            .expect("there");
        assert_eq!(w.len(), 0);
        // No file: no fingerprints.
        assert!(FingerprintWriter::resume(&dir.path().join("none.fp"), Keep::All)
            .expect("read")
            .is_none());
    }

    #[test]
    fn the_writer_refuses_keys_out_of_order_and_text_keys_read_back() {
        let mut w = FingerprintWriter::new().expect("temp file");
        w.push(&Key::Text("a".into()), 1).expect("first");
        w.push(&Key::Text("é".into()), u128::MAX)
            .expect("after a in byte order");
        assert!(w.push(&Key::Text("b".into()), 3).is_err());
        let fps = Fingerprints::new(vec![(KeyRange::all(), w)]).expect("file");
        let mut r = fps.parts()[0].read().expect("read");
        assert_eq!(r.next_pair().expect("read"), Some((Key::Text("a".into()), 1)));
        assert_eq!(r.next_pair().expect("read"), Some((Key::Text("é".into()), u128::MAX)));
        assert_eq!(r.next_pair().expect("read"), None);
        // Read again from the start by the next pass.
        assert_eq!(
            fps.parts()[0].read().expect("read").next_pair().expect("read"),
            Some((Key::Text("a".into()), 1))
        );
    }
}
