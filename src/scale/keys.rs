//! Keys named on the command line (`--keys`) or in a file (`--keys-file`), parsed as the write
//! model's key kind and put in the order the join needs.

use std::path::Path;

use anyhow::Context;

use crate::model::{Key, KeyKind};

/// `--keys 1,2,3`: comma-separated; surrounding blanks are trimmed, empty items ignored.
pub fn parse_list(text: &str, kind: KeyKind) -> anyhow::Result<Vec<Key>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_key(s, kind))
        .collect()
}

/// `--keys-file FILE`: one key per line (`-` reads stdin); blank lines and lines starting with `#`
/// are skipped. Text keys keep inner blanks but not the line's leading and trailing ones.
pub fn read_file(path: &Path, kind: KeyKind) -> anyhow::Result<Vec<Key>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read keys from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read --keys-file {}", path.display()))?
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_key(l, kind))
        .collect()
}

fn parse_key(text: &str, kind: KeyKind) -> anyhow::Result<Key> {
    match kind {
        KeyKind::Int => text
            .parse::<i64>()
            .map(Key::Int)
            .with_context(|| format!("key {text:?} is not an integer, but the key column is")),
        KeyKind::Text => Ok(Key::Text(text.to_string())),
    }
}

/// Ascending and without repeats, as the merge join expects.
pub fn normalize(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_the_key_kind_sorted_and_deduplicated() {
        let keys = normalize(parse_list(" 3, 1,,2,3 ", KeyKind::Int).unwrap());
        assert_eq!(keys, [Key::Int(1), Key::Int(2), Key::Int(3)]);
        let e = parse_list("1,x", KeyKind::Int).unwrap_err().to_string();
        assert!(e.contains("\"x\" is not an integer"), "{e}");
        let keys = normalize(parse_list("b,a,é,Z", KeyKind::Text).unwrap());
        let texts: Vec<String> = keys.iter().map(Key::doc_id).collect();
        assert_eq!(texts, ["Z", "a", "b", "é"]);
    }

    #[test]
    fn files_skip_blank_lines_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.txt");
        std::fs::write(&path, "# drifted last night\n7\n\n 5 \n").unwrap();
        assert_eq!(read_file(&path, KeyKind::Int).unwrap(), [Key::Int(7), Key::Int(5)]);
        assert!(read_file(&dir.path().join("nope"), KeyKind::Int).is_err());
    }
}
