//! String matching helpers: EQL wildcards and CIDR blocks.

use std::net::IpAddr;

/// Whether `text` matches `pattern`, where `*` is any run of characters and `?` exactly one.
/// Iterative with one backtrack point, so no pattern can make it exponential.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return ascii_wildcard_match(pattern.as_bytes(), text.as_bytes(), false);
    }
    char_wildcard_match(pattern, text)
}

/// [`wildcard_match`] with both sides lowercased, without lowercasing ASCII text.
pub(crate) fn wildcard_match_folded(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return ascii_wildcard_match(pattern.as_bytes(), text.as_bytes(), true);
    }
    char_wildcard_match(&pattern.to_lowercase(), &text.to_lowercase())
}

/// Over bytes, for ASCII (where a byte is a character): no allocation.
fn ascii_wildcard_match(p: &[u8], t: &[u8], fold: bool) -> bool {
    glob(p, t, b'*', b'?', |a, b| {
        a == b || (fold && a.eq_ignore_ascii_case(&b))
    })
}

fn char_wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t, '*', '?', |a, b| a == b)
}

/// A symbol of a Lucene wildcard pattern: `\` makes the next character literal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WildcardSymbol {
    Char(char),
    Star,
    One,
}

/// A Lucene wildcard pattern (as Elasticsearch's wildcard query reads it: `*`, `?`, and `\`
/// escaping the next character), read once and matched against many texts.
#[derive(Debug, Clone)]
pub(crate) struct LuceneWildcard {
    symbols: Vec<WildcardSymbol>,
    /// The symbols as bytes (`STAR`, `ONE` above the byte range) when all are ASCII: ASCII
    /// text then matches without being decoded.
    ascii: Option<Vec<u16>>,
    fold: bool,
}

const STAR: u16 = 256;
const ONE: u16 = 257;

impl LuceneWildcard {
    /// `pattern`, folding case when `fold`.
    pub(crate) fn new(pattern: &str, fold: bool) -> Self {
        let fold_char = |c: char| fold_char(c, fold);
        let mut symbols = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            symbols.push(match c {
                '*' => WildcardSymbol::Star,
                '?' => WildcardSymbol::One,
                '\\' => WildcardSymbol::Char(fold_char(chars.next().unwrap_or('\\'))),
                c => WildcardSymbol::Char(fold_char(c)),
            });
        }
        let ascii = symbols
            .iter()
            .map(|s| match s {
                WildcardSymbol::Star => Some(STAR),
                WildcardSymbol::One => Some(ONE),
                WildcardSymbol::Char(c) if c.is_ascii() => Some(*c as u16),
                WildcardSymbol::Char(_) => None,
            })
            .collect();
        LuceneWildcard {
            symbols,
            ascii,
            fold,
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        if let (Some(p), true) = (&self.ascii, text.is_ascii()) {
            // Folding an ASCII character gives an ASCII character, and the pattern's are
            // already folded.
            return glob(p, text.as_bytes(), STAR, ONE, |a, b| {
                let b = if self.fold { b.to_ascii_lowercase() } else { b };
                a == u16::from(b)
            });
        }
        let text: Vec<char> = text.chars().map(|c| fold_char(c, self.fold)).collect();
        glob(
            &self.symbols,
            &text,
            WildcardSymbol::Star,
            WildcardSymbol::One,
            |a, b| a == WildcardSymbol::Char(b),
        )
    }
}

/// `c` lowercased (its first lowercase character) when `fold`.
fn fold_char(c: char, fold: bool) -> char {
    if fold {
        c.to_lowercase().next().unwrap_or(c)
    } else {
        c
    }
}

#[cfg(test)]
pub(crate) fn lucene_wildcard_match(pattern: &str, text: &str, fold: bool) -> bool {
    LuceneWildcard::new(pattern, fold).matches(text)
}

/// The matcher itself, over any symbols: `star` is any run, `one` exactly one symbol.
fn glob<P: Copy + PartialEq, T: Copy>(
    p: &[P],
    t: &[T],
    star: P,
    one: P,
    same: impl Fn(P, T) -> bool,
) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the last `star` was, and the text position it currently absorbs up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || (p[pi] != star && same(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = backtrack {
            pi = sp + 1;
            ti = st + 1;
            backtrack = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star)
}

/// Whether `ip` lies in the block `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
/// A text that is not an address or a block matches nothing.
pub(crate) fn cidr_match(ip: &str, cidr: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match cidr.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let bits = bits.unwrap_or(32);
            bits <= 32
                && prefix_eq(
                    u128::from(ip.to_bits()),
                    u128::from(net.to_bits()),
                    32,
                    bits,
                )
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let bits = bits.unwrap_or(128);
            bits <= 128 && prefix_eq(ip.to_bits(), net.to_bits(), 128, bits)
        }
        _ => false,
    }
}

fn prefix_eq(a: u128, b: u128, width: u32, bits: u32) -> bool {
    let shift = width - bits;
    // A shift by the full width (a /0 block) would overflow: everything matches.
    shift >= 128 || (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.exe", "cmd.exe"));
        assert!(wildcard_match("c?d*", "cmd.exe"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(!wildcard_match("?", ""));
        assert!(!wildcard_match("cmd", "cmd.exe"));
        assert!(wildcard_match("é?", "éa"));
    }

    #[test]
    fn lucene_wildcards_escape_with_a_backslash() {
        assert!(lucene_wildcard_match(
            "*principal=\\**",
            "{principal=*, action=x}",
            false
        ));
        assert!(!lucene_wildcard_match(
            "*principal=\\**",
            "{principal=123, action=x}",
            false
        ));
        assert!(lucene_wildcard_match(
            "*principal=**",
            "{principal=123}",
            false
        ));
        assert!(lucene_wildcard_match("*A?C*", "xabcx", true));
        assert!(!lucene_wildcard_match("*A?C*", "xabcx", false));
        assert!(lucene_wildcard_match("a\\\\b", "a\\b", false));
        // Non-ASCII patterns and texts take the character path, folding alike.
        assert!(lucene_wildcard_match("*É?*", "xéyz", true));
        assert!(lucene_wildcard_match("*A?*", "xaéz", true));
        assert!(!lucene_wildcard_match("*É*", "xéy", false));
        assert!(
            lucene_wildcard_match("a\\*", "a*", false)
                && !lucene_wildcard_match("a\\*", "ab", false)
        );
    }

    #[test]
    fn folded_wildcards_agree_with_lowercasing_both_sides() {
        for (pattern, text) in [
            ("*.EXE", "cmd.exe"),
            ("C?d*", "cMD.exe"),
            ("addpermission*", "AddPermission20150331v2"),
            ("a*b", "AXXB"),
            ("ÉT?", "étÉ"),
            ("x", "X!"),
        ] {
            assert_eq!(
                wildcard_match_folded(pattern, text),
                char_wildcard_match(&pattern.to_lowercase(), &text.to_lowercase()),
                "{pattern} {text}"
            );
        }
        assert!(wildcard_match_folded("ÉT?", "étÉ"));
        assert!(!wildcard_match("A*", "abc"));
    }

    #[test]
    fn cidr_blocks() {
        assert!(cidr_match("10.1.2.3", "10.0.0.0/8"));
        assert!(!cidr_match("11.1.2.3", "10.0.0.0/8"));
        assert!(cidr_match("192.168.0.1", "192.168.0.1"));
        assert!(cidr_match("1.2.3.4", "0.0.0.0/0"));
        assert!(cidr_match("2001:db8::1", "2001:db8::/32"));
        assert!(!cidr_match("2001:db9::1", "2001:db8::/32"));
        assert!(!cidr_match("10.1.2.3", "10.0.0.0/33"));
        assert!(!cidr_match("not an ip", "10.0.0.0/8"));
        assert!(!cidr_match("10.1.2.3", "2001:db8::/32"));
    }
}
