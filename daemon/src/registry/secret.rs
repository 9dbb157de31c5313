//! Passwords: redaction wherever a DSN is shown, and password files instead of plain text.
//!
//! Invariant: nothing hrag prints, logs or writes to the registry contains a Postgres password.
//! Passwords reach the registry only as the path of a 0600 file (`postgres_password_file`).

use std::path::{Path, PathBuf};

use url::Url;

use crate::fsutil;

pub const REDACTED: &str = "***";

/// Replaces the password of a DSN with `***`. Understands URLs (`postgres://u:p@h/db`) and
/// libpq key/value strings (`host=h password=p`); anything unparseable is hidden whole, since
/// showing a malformed DSN could still show a password.
pub fn redact_dsn(dsn: &str) -> String {
    if let Some(mut url) = postgres_url(dsn) {
        if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
            return REDACTED.to_owned();
        }
        // `?password=` is accepted by libpq in URLs as well.
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        REDACTED.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    if dsn.contains('=') && !dsn.contains("://") {
        return dsn
            .split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => format!("password={REDACTED}"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    REDACTED.to_owned()
}

fn postgres_url(dsn: &str) -> Option<Url> {
    Url::parse(dsn)
        .ok()
        .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"))
}

/// Splits the password out of a URL DSN: returns the DSN without it, and the password.
pub fn split_password(dsn: &str) -> (String, Option<String>) {
    let Some(mut url) = postgres_url(dsn) else {
        return (dsn.to_owned(), None);
    };
    let password = url.password().map(percent_decode);
    if password.is_some() && url.set_password(None).is_err() {
        return (dsn.to_owned(), None);
    }
    (url.to_string(), password)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Stores a password for database `db` in `<dir>/<db>.password` with mode 0600 and returns the
/// file's path, which is what the registry records.
pub fn store_password(dir: &Path, db: &str, password: &str) -> std::io::Result<PathBuf> {
    fsutil::create_private_dir(dir, 0o700)?;
    let path = dir.join(format!("{db}.password"));
    fsutil::write_atomic(&path, password.as_bytes(), 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        let r = redact_dsn("postgresql://u:s3cret@db.local:5433/kb");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("u:***@db.local:5433/kb"), "{r}");
        let r = redact_dsn("postgres://u@h/db?password=s3cret&sslmode=require");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("sslmode=require"), "{r}");
    }

    #[test]
    fn key_value_dsns_lose_their_password() {
        let r = redact_dsn("host=h user=u password=s3cret dbname=x");
        assert_eq!(r, "host=h user=u password=*** dbname=x");
    }

    #[test]
    fn garbage_is_hidden_whole() {
        assert_eq!(redact_dsn("u:s3cret@@@"), REDACTED);
    }

    #[test]
    fn split_takes_the_password_out() {
        let (dsn, pw) = split_password("postgres://u:p%40ss@h:5432/db");
        assert_eq!(dsn, "postgres://u@h:5432/db");
        assert_eq!(pw.as_deref(), Some("p@ss"));
        let (dsn, pw) = split_password("postgres://u@h/db");
        assert_eq!(dsn, "postgres://u@h/db");
        assert_eq!(pw, None);
    }
}
