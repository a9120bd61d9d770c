//! Counts in messages, with the noun agreeing: `1 key`, `0 keys`, `2 keys`.

/// `n` followed by `one` when `n` is 1, else by `many`: `plural(1, "key", "keys")` is `1 key`.
pub fn plural<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(plural(1u64, "key", "keys"), "1 key");
        assert_eq!(plural(0u64, "key", "keys"), "0 keys");
        assert_eq!(plural(2u32, "pass", "passes"), "2 passes");
        assert_eq!(plural(1usize, "more field", "more fields"), "1 more field");
    }
}
