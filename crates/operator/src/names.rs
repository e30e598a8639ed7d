//! Kubernetes name and label syntax (the rules of apimachinery's validation package), checked
//! before an object is built: the API server refuses an object with a bad name or label whole,
//! and it would do so in the middle of applying a farm.

/// Why a name or label value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must consist of lower-case letters, digits, '-' or '.', and start and end with a letter or digit")]
    NotDns1123Subdomain,
    #[error("must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit")]
    NotLabelValue,
}

/// At most 63 characters: label values, the name part of a qualified name.
const LABEL_MAX: usize = 63;
/// At most 253 characters: subdomains (most object names).
const SUBDOMAIN_MAX: usize = 253;

/// Non-empty, every byte `inner`, the first and the last also `edge`.
fn shaped(s: &str, inner: fn(u8) -> bool, edge: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => edge(first) && edge(last) && b.iter().all(|&c| inner(c)),
        _ => false,
    }
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn lower_alnum_or_dash(c: u8) -> bool {
    lower_alnum(c) || c == b'-'
}

fn label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

fn at_most(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > max {
        return Err(NameError::TooLong(max));
    }
    Ok(())
}

/// A DNS-1123 subdomain: Deployment and Secret names, the prefix of a qualified name.
pub fn dns1123_subdomain(s: &str) -> Result<(), NameError> {
    at_most(s, SUBDOMAIN_MAX)?;
    s.split('.')
        .all(|part| shaped(part, lower_alnum_or_dash, lower_alnum))
        .then_some(())
        .ok_or(NameError::NotDns1123Subdomain)
}

/// A label value: may be empty.
pub fn label_value(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Ok(());
    }
    at_most(s, LABEL_MAX)?;
    shaped(s, label_char, |c| c.is_ascii_alphanumeric())
        .then_some(())
        .ok_or(NameError::NotLabelValue)
}

/// A qualified name, `[prefix/]name`: label keys, extended resource names.
pub fn qualified_name(s: &str) -> Result<(), NameError> {
    let name = match s.split_once('/') {
        Some((prefix, name)) => {
            dns1123_subdomain(prefix)?;
            name
        }
        None => s,
    };
    at_most(name, LABEL_MAX)?;
    shaped(name, label_char, |c| c.is_ascii_alphanumeric())
        .then_some(())
        .ok_or(NameError::NotLabelValue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_subdomains() {
        for ok in ["demo", "demo-worker", "my.farm-worker", "zk-auth", &"a".repeat(253)] {
            assert_eq!(dns1123_subdomain(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(dns1123_subdomain(""), Err(NameError::Empty));
        assert_eq!(dns1123_subdomain(&"a".repeat(254)), Err(NameError::TooLong(253)));
        for bad in ["Demo", "demo.", ".demo", "de..mo", "demo-.x", "de_mo", "zk auth"] {
            assert_eq!(dns1123_subdomain(bad), Err(NameError::NotDns1123Subdomain), "{bad:?}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "demo", "Demo_1.x-y", &"a".repeat(63)] {
            assert_eq!(label_value(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(label_value(&"a".repeat(64)), Err(NameError::TooLong(63)));
        for bad in ["-demo", "demo_", "de mo", "de/mo", "démo"] {
            assert_eq!(label_value(bad), Err(NameError::NotLabelValue), "{bad:?}");
        }
    }

    #[test]
    fn qualified_names() {
        for ok in ["gpu", "example.com/gpu", "requests.nvidia.com/gpu", "a/B_c.d"] {
            assert_eq!(qualified_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(qualified_name("example.com/"), Err(NameError::Empty));
        assert_eq!(qualified_name("/gpu"), Err(NameError::Empty));
        assert_eq!(qualified_name("Example.com/gpu"), Err(NameError::NotDns1123Subdomain));
        assert_eq!(qualified_name("example.com/gpu/x"), Err(NameError::NotLabelValue));
        assert_eq!(qualified_name("example.com/-gpu"), Err(NameError::NotLabelValue));
    }
}
