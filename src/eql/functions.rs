//! Elasticsearch's EQL functions: their signatures (checked by the parser) and their
//! evaluation. Names resolve case-insensitively, as Elasticsearch's function registry does.
//! A null argument makes the result null; a string argument that is not a string (a number,
//! an array) does too, where Elasticsearch's verifier would have refused the field.
//! Positions count characters.

use std::borrow::Cow;

use super::ast::ArithOp;
use super::eval::{Val, arith, cidr_match};

/// What a function accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signature {
    pub name: &'static str,
    pub min: usize,
    /// `None`: any number of arguments from `min` on.
    pub max: Option<usize>,
    /// Has a case-insensitive `name~` form.
    pub insensitive: bool,
}

const fn sig(name: &'static str, min: usize, max: Option<usize>, insensitive: bool) -> Signature {
    Signature {
        name,
        min,
        max,
        insensitive,
    }
}

const SIGNATURES: [Signature; 16] = [
    sig("add", 2, Some(2), false),
    sig("between", 3, Some(4), true),
    sig("cidrMatch", 2, None, false),
    sig("concat", 1, None, false),
    sig("divide", 2, Some(2), false),
    sig("endsWith", 2, Some(2), true),
    sig("indexOf", 2, Some(3), true),
    sig("length", 1, Some(1), false),
    sig("modulo", 2, Some(2), false),
    sig("multiply", 2, Some(2), false),
    sig("number", 1, Some(2), false),
    sig("startsWith", 2, Some(2), true),
    sig("string", 1, Some(1), false),
    sig("stringContains", 2, Some(2), true),
    sig("substring", 2, Some(3), false),
    sig("subtract", 2, Some(2), false),
];

#[cfg(test)]
pub(crate) const SIGNATURES_LEN: usize = SIGNATURES.len();

/// The `i`-th signature, for generating calls in tests.
#[cfg(test)]
pub(crate) fn nth_signature(i: usize) -> Signature {
    SIGNATURES[i % SIGNATURES.len()]
}

pub(crate) fn signature(name: &str) -> Option<Signature> {
    SIGNATURES
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Evaluate the function of `sig` (its arguments counted by the parser) on `args`.
pub(crate) fn call<'a>(sig: Signature, insensitive: bool, args: &[Val<'a>]) -> Val<'a> {
    let arg = |i: usize| args.get(i).unwrap_or(&Val::Null);
    let text = |i: usize| match arg(i) {
        Val::Str(s) => Some(if insensitive {
            Cow::Owned(s.to_lowercase())
        } else {
            s.clone()
        }),
        _ => None,
    };
    let int = |i: usize| match arg(i) {
        Val::Int(n) => Some(*n),
        _ => None,
    };
    let bool_val = |b: Option<bool>| b.map_or(Val::Null, Val::Bool);
    let int_val = |n: Option<usize>| {
        n.and_then(|n| i64::try_from(n).ok())
            .map_or(Val::Null, Val::Int)
    };
    match sig.name {
        "add" => arith(ArithOp::Add, arg(0), arg(1)),
        "subtract" => arith(ArithOp::Sub, arg(0), arg(1)),
        "multiply" => arith(ArithOp::Mul, arg(0), arg(1)),
        "divide" => arith(ArithOp::Div, arg(0), arg(1)),
        "modulo" => arith(ArithOp::Mod, arg(0), arg(1)),
        "between" => {
            let greedy = match args.get(3) {
                None => false,
                Some(Val::Bool(b)) => *b,
                Some(_) => return Val::Null,
            };
            let (Some(source), Some(left), Some(right)) = (text(0), text(1), text(2)) else {
                return Val::Null;
            };
            // Positions found in the folded text are valid in the original only when folding
            // kept every character's length; otherwise return the folded slice.
            let original = match arg(0) {
                Val::Str(s) if s.len() == source.len() => s.clone(),
                _ => source.clone(),
            };
            Val::Str(Cow::Owned(
                between(&source, &original, &left, &right, greedy).to_string(),
            ))
        }
        "cidrMatch" => {
            let Val::Str(ip) = arg(0) else {
                return Val::Null;
            };
            bool_val(Some(args.get(1..).unwrap_or_default().iter().any(
                |block| match block {
                    Val::Str(block) => cidr_match(ip, block),
                    _ => false,
                },
            )))
        }
        "concat" => {
            let mut out = String::new();
            for a in args {
                let Some(t) = a.to_text() else {
                    return Val::Null;
                };
                out.push_str(&t);
            }
            Val::Str(Cow::Owned(out))
        }
        "endsWith" => bool_val(text(0).zip(text(1)).map(|(s, x)| s.ends_with(x.as_ref()))),
        "startsWith" => bool_val(text(0).zip(text(1)).map(|(s, x)| s.starts_with(x.as_ref()))),
        "stringContains" => bool_val(text(0).zip(text(1)).map(|(s, x)| s.contains(x.as_ref()))),
        "indexOf" => {
            let (Some(source), Some(needle)) = (text(0), text(1)) else {
                return Val::Null;
            };
            let start = match args.get(2) {
                None | Some(Val::Null) => 0,
                Some(Val::Int(n)) => usize::try_from(*n).unwrap_or(0),
                Some(_) => return Val::Null,
            };
            let Some((from, _)) = source.char_indices().nth(start).or(
                // Starting right after the last character still finds an empty needle.
                (start == source.chars().count()).then_some((source.len(), ' ')),
            ) else {
                return Val::Null;
            };
            int_val(
                source[from..]
                    .find(needle.as_ref())
                    .map(|at| start + source[from..from + at].chars().count()),
            )
        }
        "length" => int_val(text(0).map(|s| s.chars().count())),
        "number" => number(arg(0), args.get(1)),
        "string" => arg(0).to_text().map_or(Val::Null, Val::Str),
        "substring" => {
            let Some(source) = text(0) else {
                return Val::Null;
            };
            let (Some(start), end) = (int(1), args.get(2)) else {
                return Val::Null;
            };
            let end = match end {
                None | Some(Val::Null) => None,
                Some(Val::Int(n)) => Some(*n),
                Some(_) => return Val::Null,
            };
            Val::Str(Cow::Owned(substring(&source, start, end)))
        }
        _ => Val::Null,
    }
}

/// The text of `original` between the first `left` and the next (or, greedy, the last)
/// `right`, searching `folded`; empty when either is missing (Elasticsearch's `between`).
fn between<'s>(folded: &str, original: &'s str, left: &str, right: &str, greedy: bool) -> &'s str {
    let Some(start) = folded.find(left).map(|at| at + left.len()) else {
        return "";
    };
    let end = if greedy {
        folded.rfind(right).filter(|end| *end >= start)
    } else {
        folded[start..].find(right).map(|at| start + at)
    };
    match end {
        Some(end) => original.get(start..end).unwrap_or(""),
        None => "",
    }
}

/// Python-style slice by characters: negative positions count from the end, out-of-range
/// positions are clamped.
fn substring(source: &str, start: i64, end: Option<i64>) -> String {
    let len = source.chars().count() as i64;
    let clamp = |i: i64| {
        let i = if i < 0 { len + i } else { i };
        i.clamp(0, len) as usize
    };
    let (start, end) = (clamp(start), clamp(end.unwrap_or(len)));
    if start >= end {
        return String::new();
    }
    source.chars().skip(start).take(end - start).collect()
}

/// `number(text[, base])`: an integer in `base` (2 to 36; base 16 takes a `0x` prefix), or a
/// decimal number when no base is given. Text that is not a number is null.
fn number<'a>(value: &Val<'a>, base: Option<&Val<'a>>) -> Val<'a> {
    let Val::Str(s) = value else {
        return Val::Null;
    };
    let s = s.trim();
    match base {
        None | Some(Val::Null) => s
            .parse::<i64>()
            .map(Val::Int)
            .or_else(|_| s.parse::<f64>().map(Val::Float))
            .ok()
            .filter(|v| !matches!(v, Val::Float(x) if !x.is_finite()))
            .unwrap_or(Val::Null),
        Some(Val::Int(base)) if (2..=36).contains(base) => {
            let (negative, digits) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let digits = if *base == 16 {
                digits
                    .strip_prefix("0x")
                    .or_else(|| digits.strip_prefix("0X"))
                    .unwrap_or(digits)
            } else {
                digits
            };
            let signed = if negative {
                format!("-{digits}")
            } else {
                digits.to_string()
            };
            // `base` is within 2..=36, so the cast is exact.
            i64::from_str_radix(&signed, *base as u32).map_or(Val::Null, Val::Int)
        }
        Some(_) => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'static> {
        Val::Str(Cow::Owned(text.to_string()))
    }

    /// Call the function named `name`, resolved as the parser resolves it.
    fn call<'a>(name: &str, insensitive: bool, args: &[Val<'a>]) -> Val<'a> {
        let sig = signature(name).expect("a known function");
        super::call(sig, insensitive, args)
    }

    #[test]
    fn string_functions() {
        assert_eq!(call("length", false, &[s("héllo")]), Val::Int(5));
        assert_eq!(
            call(
                "between",
                false,
                &[s("welcome to event query language"), s(" "), s(" ")]
            ),
            s("to")
        );
        assert_eq!(
            call(
                "between",
                false,
                &[
                    s("welcome to event query language"),
                    s(" "),
                    s(" "),
                    Val::Bool(true)
                ]
            ),
            s("to event query")
        );
        assert_eq!(
            call("between", true, &[s("A.B.C"), s("a."), s(".c")]),
            s("B")
        );
        assert_eq!(call("between", false, &[s("abc"), s("x"), s("c")]), s(""));
        assert_eq!(
            call("concat", false, &[s("a"), Val::Int(1), Val::Bool(true)]),
            s("a1true")
        );
        assert_eq!(call("concat", false, &[s("a"), Val::Null]), Val::Null);
        assert_eq!(
            call("endsWith", true, &[s("CMD.EXE"), s(".exe")]),
            Val::Bool(true)
        );
        assert_eq!(
            call("endsWith", false, &[s("CMD.EXE"), s(".exe")]),
            Val::Bool(false)
        );
        assert_eq!(
            call("startsWith", false, &[s("cmd.exe"), s("cmd")]),
            Val::Bool(true)
        );
        assert_eq!(
            call("stringContains", true, &[s("Hello"), s("ELL")]),
            Val::Bool(true)
        );
        assert_eq!(
            call("stringContains", false, &[Val::Int(1), s("1")]),
            Val::Null
        );
        assert_eq!(call("string", false, &[Val::Int(42)]), s("42"));
        assert_eq!(call("string", false, &[Val::Null]), Val::Null);
    }

    #[test]
    fn index_of_and_substring_count_characters() {
        assert_eq!(call("indexOf", false, &[s("mémé"), s("é")]), Val::Int(1));
        assert_eq!(
            call("indexOf", false, &[s("mémé"), s("é"), Val::Int(2)]),
            Val::Int(3)
        );
        assert_eq!(call("indexOf", false, &[s("abc"), s("x")]), Val::Null);
        assert_eq!(
            call("indexOf", false, &[s("abc"), s(""), Val::Int(3)]),
            Val::Int(3)
        );
        assert_eq!(
            call("indexOf", false, &[s("abc"), s("a"), Val::Int(9)]),
            Val::Null
        );
        assert_eq!(call("indexOf", true, &[s("ABC"), s("b")]), Val::Int(1));
        assert_eq!(
            call("substring", false, &[s("start.exe"), Val::Int(-4)]),
            s(".exe")
        );
        assert_eq!(
            call(
                "substring",
                false,
                &[s("start.exe"), Val::Int(1), Val::Int(3)]
            ),
            s("ta")
        );
        assert_eq!(
            call("substring", false, &[s("abc"), Val::Int(2), Val::Int(1)]),
            s("")
        );
        assert_eq!(
            call("substring", false, &[s("abc"), Val::Int(-99), Val::Int(99)]),
            s("abc")
        );
    }

    #[test]
    fn numbers_and_arithmetic() {
        assert_eq!(call("number", false, &[s("1337")]), Val::Int(1337));
        assert_eq!(call("number", false, &[s("1.5")]), Val::Float(1.5));
        assert_eq!(
            call("number", false, &[s("0xff"), Val::Int(16)]),
            Val::Int(255)
        );
        assert_eq!(
            call("number", false, &[s("-101"), Val::Int(2)]),
            Val::Int(-5)
        );
        assert_eq!(call("number", false, &[s("abc")]), Val::Null);
        assert_eq!(call("number", false, &[s("1"), Val::Int(99)]), Val::Null);
        assert_eq!(
            call("add", false, &[Val::Int(1), Val::Float(0.5)]),
            Val::Float(1.5)
        );
        assert_eq!(
            call("divide", false, &[Val::Int(7), Val::Int(2)]),
            Val::Int(3)
        );
        assert_eq!(
            call("divide", false, &[Val::Int(7), Val::Int(0)]),
            Val::Null
        );
        assert_eq!(
            call("modulo", false, &[Val::Int(-7), Val::Int(3)]),
            Val::Int(-1)
        );
        assert_eq!(
            call("multiply", false, &[Val::Int(i64::MAX), Val::Int(2)]),
            Val::Null
        );
        assert_eq!(call("subtract", false, &[Val::Int(1), s("1")]), Val::Null);
    }

    #[test]
    fn cidr_match_takes_several_blocks() {
        let ip = s("192.168.1.7");
        assert_eq!(
            call(
                "cidrMatch",
                false,
                &[ip.clone(), s("10.0.0.0/8"), s("192.168.0.0/16")]
            ),
            Val::Bool(true)
        );
        assert_eq!(
            call("cidrMatch", false, &[ip, s("10.0.0.0/8")]),
            Val::Bool(false)
        );
        assert_eq!(
            call("cidrMatch", false, &[Val::Null, s("10.0.0.0/8")]),
            Val::Null
        );
    }

    #[test]
    fn names_resolve_case_insensitively() {
        assert_eq!(signature("STARTSWITH").map(|s| s.name), Some("startsWith"));
        assert!(signature("nope").is_none());
    }
}
