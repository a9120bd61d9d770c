//! Secrets never reach a terminal, a log or a report: [`Secret`] hides its value from `Debug` and
//! `Display`, and [`redact_url`] strips the password out of connection URLs before they are shown.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `postgres://app:hunter2@db/shop` → `postgres://app:***@db/shop`. Also hides `password=` query
/// parameters. Text that does not parse as a URL is returned with anything after a `:` before `@` masked.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            if pairs.iter().any(|(k, _)| is_secret_param(k)) {
                let mut serializer = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in &pairs {
                    serializer.append_pair(k, if is_secret_param(k) { "***" } else { v });
                }
                url.set_query(Some(&serializer.finish()));
            }
            url.to_string()
        }
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &raw[scheme_end + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!("{}{}:***{}", &raw[..scheme_end + 3], &userinfo[..colon], &raw[at..]),
                    None => raw.to_string(),
                }
            }
            _ => raw.to_string(),
        },
    }
}

fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "sslpassword" | "api_key" | "apikey" | "token"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("http://elastic:s3cr3t@localhost:9200"),
            "http://elastic:***@localhost:9200/"
        );
        let r = redact_url("postgres://db/shop?user=app&password=hunter2");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("user=app"));
        assert_eq!(redact_url("postgres://app@db/shop"), "postgres://app@db/shop");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
