//! Plain-text tables and times the way kubectl prints them.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Columns separated by three spaces, each as wide as its widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or_default();
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or_default()
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration as kubectl's age column shows it: `45s`, `12m`, `5h`, `3d`.
pub fn short_duration(duration: SignedDuration) -> String {
    let seconds = duration.as_secs().unsigned_abs();
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `t` relative to `now`: `in 29d` or `3h ago`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = t.duration_since(now);
    if delta.is_negative() {
        format!("{} ago", short_duration(delta))
    } else {
        format!("in {}", short_duration(delta))
    }
}

/// An instant to the second, as kubectl prints times.
pub fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An optional time as a table cell, `-` when unset.
pub fn cell(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(|| "-".into(), |t| relative(t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_times_read_like_kubectl() {
        let mut table = Table::new(&["NAME", "READY"]);
        table.push(vec!["billing-api".into(), "True".into()]);
        assert_eq!(table.render(), "NAME          READY\nbilling-api   True\n");
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(relative("2026-01-30T00:00:00Z".parse().unwrap(), now), "in 29d");
        assert_eq!(relative("2025-12-31T21:00:00Z".parse().unwrap(), now), "3h ago");
        assert_eq!(cell(None, now), "-");
    }
}
