//! Keys named on the command line (`--keys`) or in a file (`--keys-file`), parsed as the write
//! model's key kind and put in the order the join needs.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;

use crate::model::{Key, KeyKind};
use crate::scale::keyfile::KeyFile;

/// `--keys 1,2,3` (of `check` and `repair`): comma-separated; surrounding blanks are trimmed, empty items
/// ignored.
pub fn parse_list(text: &str, kind: KeyKind) -> anyhow::Result<Vec<Key>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_key(s, kind))
        .collect()
}

/// `--keys-file FILE`: one key per line (`-` reads stdin); blank lines and lines starting with `#`
/// are skipped. Text keys keep inner blanks but not the line's leading and trailing ones. Read as a
/// stream and sorted on disk ([`KeyFile::sort`]), so a file of any length fits.
pub fn read_file(path: &Path, kind: KeyKind) -> anyhow::Result<KeyFile> {
    let (name, reader): (String, Box<dyn BufRead>) = if path == Path::new("-") {
        ("stdin".into(), Box::new(std::io::stdin().lock()))
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot read --keys-file {}", path.display()))?;
        (path.display().to_string(), Box::new(std::io::BufReader::new(file)))
    };
    let keys = reader.lines().enumerate().filter_map(|(i, line)| match line {
        Err(e) => Some(Err(anyhow::anyhow!("cannot read --keys-file {name}: {e}"))),
        Ok(line) => {
            let text = line.trim();
            (!text.is_empty() && !text.starts_with('#'))
                .then(|| parse_key(text, kind).map_err(|e| anyhow::anyhow!("--keys-file {name}, line {}: {e}", i + 1)))
        }
    });
    KeyFile::sort(keys)
}

/// One key as `kind`: an integer must parse as one; any text is a text key.
pub fn parse_key(text: &str, kind: KeyKind) -> anyhow::Result<Key> {
    match kind {
        KeyKind::Int => text
            .parse::<i64>()
            .map(Key::Int)
            .with_context(|| format!("key {text:?} is not an integer, but the key column is")),
        KeyKind::Text => Ok(Key::Text(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_the_key_kind_sorted_and_deduplicated() {
        let sorted = |keys: Vec<Key>| -> Vec<Key> {
            let file = KeyFile::sort(keys.into_iter().map(Ok)).unwrap();
            file.keys().unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(
            sorted(parse_list(" 3, 1,,2,3 ", KeyKind::Int).unwrap()),
            [1, 2, 3].map(Key::Int)
        );
        let e = parse_list("1,x", KeyKind::Int).unwrap_err().to_string();
        assert!(e.contains("\"x\" is not an integer"), "{e}");
        let texts: Vec<String> = sorted(parse_list("b,a,é,Z", KeyKind::Text).unwrap())
            .iter()
            .map(Key::doc_id)
            .collect();
        assert_eq!(texts, ["Z", "a", "b", "é"]);
    }

    #[test]
    fn files_skip_blank_lines_and_comments_and_name_the_line_of_a_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "# drifted last night\n7\n\n 5 \n7\n").unwrap();
        let keys = read_file(&path, KeyKind::Int).unwrap();
        assert_eq!(
            keys.keys().unwrap().map(Result::unwrap).collect::<Vec<_>>(),
            [5, 7].map(Key::Int)
        );
        assert!(read_file(&dir.path().join("nope"), KeyKind::Int).is_err());
        std::fs::write(&path, "1\n2\n# three\nthree\n").unwrap();
        let e = read_file(&path, KeyKind::Int).unwrap_err().to_string();
        assert!(e.contains("keys.txt, line 4: key \"three\" is not an integer"), "{e}");
    }
}
