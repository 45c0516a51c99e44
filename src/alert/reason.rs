//! `kibana.alert.reason`: the one-line summary Kibana shows for each alert
//! (`kibana-detection-engine.md` §8.4), rebuilt piece by piece in Kibana's order.

use serde_json::Value;

use super::fields::display_value;
use crate::rule::Severity;

/// The reason sentence for an alert on `source` raised by a rule named `rule_name`.
///
/// `[<event.category> ]event[ with][ process P,][ parent process PP,][ file F,][ source IP]
/// [:PORT,][ destination IP][:PORT,][ by USER][ on HOST] created <severity> alert <rule name>.`
pub fn reason(source: &Value, severity: Severity, rule_name: &str) -> String {
    let mut text = String::with_capacity(96 + rule_name.len());
    if let Some(category) = display_value(source, "event.category") {
        text.push_str(&category);
        text.push(' ');
    }
    text.push_str("event");
    let present: Vec<(Option<String>, &str, &str)> = PIECES
        .iter()
        .map(|&(field, before, after)| (display_value(source, field), before, after))
        .collect();
    if present[..WITH_PIECES]
        .iter()
        .any(|(value, _, _)| value.is_some())
    {
        text.push_str(" with");
    }
    for (value, before, after) in &present {
        if let Some(value) = value {
            text.push_str(before);
            text.push_str(value);
            text.push_str(after);
        }
    }
    text.push_str(" created ");
    text.push_str(severity.as_str());
    text.push_str(" alert ");
    text.push_str(rule_name);
    text.push('.');
    text
}

/// Each optional piece of the sentence: the field, the text before it and the text after it.
const PIECES: [(&str, &str, &str); 9] = [
    ("process.name", " process ", ","),
    ("process.parent.name", " parent process ", ","),
    ("file.name", " file ", ","),
    ("source.ip", " source ", ""),
    ("source.port", ":", ","),
    ("destination.ip", " destination ", ""),
    ("destination.port", ":", ","),
    ("user.name", " by ", ""),
    ("host.name", " on ", ""),
];

/// The first pieces of [`PIECES`] are the ones that make Kibana write "with"; user and host
/// do not.
const WITH_PIECES: usize = 7;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_event_has_no_with() {
        let text = reason(&json!({"user": {"name": "u"}}), Severity::Low, "R");
        assert_eq!(text, "event by u created low alert R.");
    }

    #[test]
    fn ports_take_a_comma_and_ips_do_not() {
        let doc =
            json!({"source": {"ip": "1.2.3.4", "port": 22}, "destination": {"ip": "5.6.7.8"}});
        assert_eq!(
            reason(&doc, Severity::High, "R"),
            "event with source 1.2.3.4:22, destination 5.6.7.8 created high alert R."
        );
    }
}
