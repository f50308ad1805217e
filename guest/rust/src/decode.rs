//! Percent-decoding and query strings (form encoding: `name=value` pairs split on `&`).

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes the `%XX` escapes of `s` (and `+` as a space with `plus`, as in query strings); `None`
/// for a `%` without two hex digits after it. `%00` decodes to a NUL byte.
pub fn percent_decode(s: &[u8], plus: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = match s[i] {
            b'%' => {
                let hi = hex(*s.get(i + 1)?)?;
                let lo = hex(*s.get(i + 2)?)?;
                i += 2;
                hi << 4 | lo
            }
            b'+' if plus => b' ',
            c => c,
        };
        out.push(c);
        i += 1;
    }
    Some(out)
}

/// The value of the first parameter named `name` in `query` (without the `?`), form-decoded;
/// `None` when absent or when its value has a malformed escape. A name without `=` has the empty
/// value; a name with a malformed escape matches nothing.
pub fn query_param(query: &[u8], name: &str) -> Option<Vec<u8>> {
    for pair in query.split(|&c| c == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&c| c == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if percent_decode(key, true).as_deref() == Some(name.as_bytes()) {
            return percent_decode(value, true);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus_only_when_asked() {
        assert_eq!(percent_decode(b"a+b%20c%2f", false).unwrap(), b"a+b c/");
        assert_eq!(percent_decode(b"a+b", true).unwrap(), b"a b");
        assert_eq!(percent_decode(b"%00", false).unwrap(), b"\0");
    }

    #[test]
    fn refuses_truncated_and_malformed_escapes() {
        for bad in [&b"%"[..], b"abc%4", b"%zz", b"%4g", b"%%41"] {
            assert_eq!(percent_decode(bad, false), None, "{:?}", bad);
        }
    }

    #[test]
    fn finds_the_first_parameter_by_its_decoded_name() {
        assert_eq!(query_param(b"a=1&na%6De=x&name=y", "name").unwrap(), b"x");
        assert_eq!(query_param(b"&&flag&k=v", "flag").unwrap(), b"");
        assert_eq!(query_param(b"names=1&nam=2", "name"), None);
        assert_eq!(query_param(b"v=%zz", "v"), None);
        assert_eq!(query_param(b"", "v"), None);
    }
}
