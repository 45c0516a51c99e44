//! Java's `AbstractMap.toString()` of the `HashMap`s Elasticsearch's `json` processor builds:
//! the exact text of `aws.cloudtrail.request_parameters` and its siblings, which rules match
//! with wildcards (docs/cloudtrail-ecs.md §3).
//!
//! Written here rather than taken from a crate: no Rust crate emulates `java.util.HashMap`
//! iteration order (it depends on `String.hashCode` over UTF-16 units, the JDK's hash
//! spreading, the table's resize history and its treeify rule), and the order is the whole
//! point. Likewise JDK 19+ `Double.toString` layout is built on Rust's own shortest
//! round-trip digits rather than a crate.

use std::fmt::Write;

use super::node::{Node, Num, Obj};

/// `java.util.HashMap` constants (OpenJDK).
const INITIAL_CAPACITY: usize = 16;
const TREEIFY_THRESHOLD: usize = 8;
const MIN_TREEIFY_CAPACITY: usize = 64;

/// `String.hashCode()`: `31*h + c` over UTF-16 code units, wrapping at 32 bits.
pub fn string_hash(key: &str) -> i32 {
    key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// `HashMap.hash()`: the high half folded into the low half.
fn spread(key: &str) -> u32 {
    let h = string_hash(key) as u32;
    h ^ (h >> 16)
}

/// The order in which a `HashMap` filled with `keys` (in this order, duplicates already
/// excluded) iterates, as indices into `keys`.
///
/// The table grows when the size passes 0.75 × capacity, and also when one bucket would
/// reach a ninth entry while the table is below 64 buckets (the JDK resizes instead of
/// treeifying). Within a bucket, entries stay in insertion order through every resize, so
/// the final order is (bucket at the final capacity, insertion index). A bucket of nine or
/// more at 64+ buckets becomes a red-black tree whose order we do not emulate; we keep
/// insertion order there (it needs nine colliding keys in one map, which no CloudTrail
/// payload has).
pub fn iteration_order(keys: &[&str]) -> Vec<usize> {
    let hashes: Vec<u32> = keys.iter().map(|k| spread(k)).collect();
    let capacity = final_capacity(&hashes);
    let mask = (capacity - 1) as u32;
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| (hashes[i] & mask, i));
    order
}

/// Replay the insertions to find the table size the map ends with.
fn final_capacity(hashes: &[u32]) -> usize {
    let mut capacity = INITIAL_CAPACITY;
    // Only the resize rules matter, so bucket sizes are all we track.
    let mut buckets = vec![0usize; capacity];
    let regrow = |capacity: usize, inserted: &[u32]| {
        let mut buckets = vec![0usize; capacity];
        for &h in inserted {
            buckets[(h as usize) & (capacity - 1)] += 1;
        }
        buckets
    };
    for (i, &h) in hashes.iter().enumerate() {
        let size = i + 1;
        let b = (h as usize) & (capacity - 1);
        buckets[b] += 1;
        // `putVal`: a ninth entry in one bin calls `treeifyBin`, which resizes small tables;
        // then the size check may resize once more.
        if buckets[b] > TREEIFY_THRESHOLD && capacity < MIN_TREEIFY_CAPACITY {
            capacity *= 2;
            buckets = regrow(capacity, &hashes[..size]);
        }
        if size > capacity / 4 * 3 {
            capacity *= 2;
            buckets = regrow(capacity, &hashes[..size]);
        }
    }
    capacity
}

/// Render a parsed value as Java's `toString()` would.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    write_node(&mut out, node);
    out
}

fn write_node(out: &mut String, node: &Node) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Num(Num::U64(n)) => {
            let _ = write!(out, "{n}");
        }
        Node::Num(Num::I64(n)) => {
            let _ = write!(out, "{n}");
        }
        Node::Num(Num::F64(x)) => out.push_str(&double_to_string(*x)),
        Node::Str(s) => out.push_str(s),
        Node::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_node(out, item);
            }
            out.push(']');
        }
        Node::Map(obj) => write_map(out, obj),
    }
}

fn write_map(out: &mut String, obj: &Obj) {
    let keys: Vec<&str> = obj.entries.iter().map(|e| e.key.as_ref()).collect();
    out.push('{');
    let mut first = true;
    for i in iteration_order(&keys) {
        let entry = &obj.entries[i];
        if entry.dropped {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(&entry.key);
        out.push('=');
        write_node(out, &entry.value);
    }
    out.push('}');
}

/// JDK 19+ `Double.toString`: the shortest round-trip digits, laid out plainly for
/// 10⁻³ ≤ |x| < 10⁷ and as `d.dddE±n` otherwise, always with a digit after the point.
pub fn double_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "1.23456789e7", "1e-4".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let abs = x.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let (int_part, frac) = if digits.len() > int_len {
                (digits[..int_len].to_string(), digits[int_len..].to_string())
            } else {
                (
                    format!("{digits}{}", "0".repeat(int_len - digits.len())),
                    String::new(),
                )
            };
            let frac = if frac.is_empty() { "0".into() } else { frac };
            format!("{sign}{int_part}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (head, tail) = digits.split_at(1);
        let tail = if tail.is_empty() { "0" } else { tail };
        format!("{sign}{head}.{tail}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_hash_matches_java() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("ab"), 97 * 31 + 98);
        // A non-BMP character counts as its surrogate pair D83D DE00.
        assert_eq!(string_hash("😀"), 0xD83D * 31 + 0xDE00);
        // Wraps at 32 bits like Java's int arithmetic.
        assert_eq!(string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn doubles_render_like_java() {
        for (x, s) in [
            (1.0, "1.0"),
            (1e7, "1.0E7"),
            (1e-4, "1.0E-4"),
            (1.5e-3, "0.0015"),
            (12345678.9, "1.23456789E7"),
            (0.001, "0.001"),
            (100.0, "100.0"),
            (9999999.0, "9999999.0"),
            (-2.5, "-2.5"),
            (1e23, "1.0E23"),
            (123.456, "123.456"),
        ] {
            assert_eq!(double_to_string(x), s, "{x}");
        }
    }

    #[test]
    fn a_crowded_bucket_grows_a_small_table() {
        // Nine keys with the same bucket at 16 buckets: the JDK resizes to 32 instead of
        // treeifying, which reorders them against the other keys.
        let colliding: Vec<String> = (0..100_000)
            .map(|i| format!("k{i}"))
            .filter(|k| spread(k) & 15 == 3 && spread(k) & 31 == 3)
            .take(9)
            .collect();
        let refs: Vec<&str> = colliding.iter().map(String::as_str).collect();
        assert_eq!(
            final_capacity(&refs.iter().map(|k| spread(k)).collect::<Vec<_>>()),
            32
        );
    }
}
