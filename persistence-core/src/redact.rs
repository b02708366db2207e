//! Driver errors with the secrets of a connection string taken out.
//!
//! Some drivers echo the connection string they could not use (sea-orm:
//! "The connection string '…' cannot be parsed"; URL parsers quote the part
//! they choke on). Such an error must not become the source of an
//! [`Error`](crate::Error) as it is: its `Display`, its `Debug` and every
//! error below it in the source chain would print the password.
//! [`RedactedError::new`] copies the texts of the whole chain with every
//! secret of the URL replaced, and is a drop-in source.

use std::fmt;

use crate::error::redact_url;

/// The replacement for a secret.
const MASK: &str = "***";

/// The secrets of a connection string, longest first: the URL itself, its
/// user-info, its password (as written and percent-decoded, and the parts
/// of a password that contains an unescaped `@`), and the values of query
/// parameters that carry credentials (`password=`, `sslpassword=`,
/// `authMechanismProperties=`, tokens and keys).
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let url = url.trim();
    if url.is_empty() {
        return out;
    }
    out.push(url.to_string());
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let rest = head.split_once("://").map_or(head, |(_, r)| r);
    // The user-info ends at the last `@` before the path (a password may hold
    // an unescaped `@` or `/`; the host never holds an `@`).
    let authority_end = rest
        .rfind('@')
        .map(|at| rest[at..].find('/').map_or(rest.len(), |slash| at + slash));
    let authority = &rest[..authority_end.unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@') {
        let userinfo = &authority[..at];
        out.push(userinfo.to_string());
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_string());
            if let Some(decoded) = percent_decode(password) {
                out.push(decoded);
            }
            out.extend(
                password
                    .split(['@', ':', '/'])
                    .filter(|p| p.len() >= 3)
                    .map(str::to_string),
            );
        }
    }
    if let Some(q) = query {
        out.push(q.to_string());
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = k.to_ascii_lowercase();
            let secret = ["pass", "secret", "token", "key", "credential", "auth"]
                .iter()
                .any(|s| k.contains(s));
            if secret && !v.is_empty() {
                out.push(v.to_string());
                if let Some(decoded) = percent_decode(v) {
                    out.push(decoded);
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8(out).ok()
}

/// `text` with every secret replaced by `***` (the URL itself by its
/// redacted form).
pub fn scrub(text: &str, url: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            let with = if s == url.trim() {
                redact_url(url)
            } else {
                MASK.to_string()
            };
            out = out.replace(s.as_str(), &with);
        }
    }
    out
}

/// A copy of an error (and of its whole source chain) whose `Display`,
/// `Debug` and alternate `Debug` have the secrets of a connection string
/// replaced by `***`. Use it as the source of an
/// [`Error`](crate::Error) in place of a driver error that may echo a URL.
pub struct RedactedError {
    display: String,
    alternate: String,
    debug: String,
    debug_pretty: String,
    source: Option<Box<RedactedError>>,
}

impl RedactedError {
    /// Copy `err` and its sources, taking out the secrets of `url`.
    pub fn new(err: &(dyn std::error::Error + 'static), url: &str) -> RedactedError {
        let secrets = url_secrets(url);
        Self::with_secrets(err, url, &secrets, 0)
    }

    fn with_secrets(
        err: &(dyn std::error::Error + 'static),
        url: &str,
        secrets: &[String],
        depth: usize,
    ) -> RedactedError {
        let clean = |s: String| scrub(&s, url, secrets);
        RedactedError {
            display: clean(format!("{err}")),
            alternate: clean(format!("{err:#}")),
            debug: clean(format!("{err:?}")),
            debug_pretty: clean(format!("{err:#?}")),
            // Chains are short; the bound only guards against a cyclic one.
            source: err
                .source()
                .filter(|_| depth < 16)
                .map(|s| Box::new(Self::with_secrets(s, url, secrets, depth + 1))),
        }
    }
}

impl fmt::Display for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if f.alternate() {
            &self.alternate
        } else {
            &self.display
        })
    }
}

impl fmt::Debug for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if f.alternate() {
            &self.debug_pretty
        } else {
            &self.debug
        })
    }
}

impl std::error::Error for RedactedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Echo(String, Option<Box<Echo>>);
    impl fmt::Display for Echo {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot use '{}'", self.0)
        }
    }
    impl std::error::Error for Echo {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static))
        }
    }

    fn all_texts(e: &(dyn std::error::Error + 'static)) -> String {
        let mut out = String::new();
        let mut cur = Some(e);
        while let Some(e) = cur {
            out.push_str(&format!("{e} | {e:#} | {e:?} | {e:#?}\n"));
            cur = e.source();
        }
        out
    }

    #[test]
    fn secrets_of_urls() {
        let s =
            url_secrets("postgres://bob:p%40ss%3Aw0rd@db:5432/app?sslpassword=k3y&sslmode=require");
        for secret in ["p%40ss%3Aw0rd", "p@ss:w0rd", "k3y", "bob:p%40ss%3Aw0rd"] {
            assert!(s.iter().any(|x| x == secret), "{secret} in {s:?}");
        }
        assert!(!s.iter().any(|x| x == "require"), "{s:?}");
        // An unescaped `@` in the password: the host part is not a secret, the password's parts are.
        let s = url_secrets("mongodb://u:pa@ss@host:27017/db");
        assert!(s.iter().any(|x| x == "pa@ss"), "{s:?}");
        assert!(!s.iter().any(|x| x == "host:27017"), "{s:?}");
        assert!(url_secrets("").is_empty());
    }

    #[test]
    fn the_whole_chain_is_scrubbed() {
        let url = "postgres://app:hunter2@db:5432/x?password=hunter3";
        let inner = Echo("app:hunter2@db".into(), None);
        let outer = Echo(url.into(), Some(Box::new(inner)));
        let r = RedactedError::new(&outer, url);
        let texts = all_texts(&r);
        assert!(
            !texts.contains("hunter2") && !texts.contains("hunter3"),
            "{texts}"
        );
        assert!(texts.contains("postgres://app:***@db:5432/x"), "{texts}");
        assert!(texts.contains("cannot use '***@db'"), "{texts}");
        assert!(std::error::Error::source(&r).is_some());
    }
}
