//! Report rows with fields beyond the shared shape (`cpu_ms`, `rss_mb`, `p50_ms`, …): the
//! shared keys keep their names and meaning, the extra ones follow.

#![allow(dead_code, unreachable_pub)]

use super::Row;

/// `row`'s JSON object with `extra` fields added (values rounded to 2 decimals).
pub fn json_with(row: &Row, extra: &[(&str, f64)]) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&row.json()).unwrap();
    if let Some(obj) = value.as_object_mut() {
        for (key, x) in extra {
            obj.insert(
                (*key).to_owned(),
                serde_json::json!((x * 100.0).round() / 100.0),
            );
        }
    }
    value.to_string()
}

/// The JSON object `line` with the text field `key` added.
pub fn with_text(line: &str, key: &str, value: &str) -> String {
    let mut value_of: serde_json::Value = serde_json::from_str(line).unwrap();
    if let Some(obj) = value_of.as_object_mut() {
        obj.insert(key.to_owned(), serde_json::json!(value));
    }
    value_of.to_string()
}

/// `row` as a table line, `extra` appended as `key=value`.
pub fn table_with(row: &Row, extra: &[(&str, f64)]) -> String {
    let mut line = format!(
        "{:<20} {:<10} {:>6} {:>5} {:>15.1} {:>10.1} {:>7.3}",
        row.scenario,
        row.runtime,
        row.agents,
        row.rigs,
        row.mayor_ready_ms,
        row.floor_ms,
        row.ratio()
    );
    for (key, x) in extra {
        line.push_str(&format!("  {key}={x:.1}"));
    }
    line
}
