//! Output of the command line: aligned text tables for people, JSON and YAML for programs.

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// `value` as pretty JSON or YAML (`Format::Table` is each command's own).
pub fn structured<T: Serialize>(format: Format, value: &T) -> Result<String> {
    Ok(match format {
        Format::Yaml => serde_saphyr::to_string(value)?,
        _ => {
            let mut text = serde_json::to_string_pretty(value)?;
            text.push('\n');
            text
        }
    })
}

/// Left-aligned columns two spaces apart, each line indented by `indent`, no trailing spaces.
pub fn table(indent: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::from(indent);
        for (i, cell) in cells.enumerate() {
            out.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad + 2));
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// An optional number, `-` when absent.
pub fn opt(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A signed change, `+3`, `-40`, `0`; `-` when unknown.
pub fn signed(value: Option<i64>) -> String {
    match value {
        Some(v) if v > 0 => format!("+{v}"),
        Some(v) => v.to_string(),
        None => "-".to_owned(),
    }
}

/// A duration in milliseconds as people read it: `850ms`, `42s`, `3m12s`, `5h4m`, `2d3h`; `-` when unknown.
pub fn age(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".to_owned() };
    let s = ms / 1000;
    match s {
        _ if (1..1000).contains(&ms) => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_without_trailing_spaces() {
        let rows = vec![vec!["orders".to_owned(), "0".to_owned(), String::new()]];
        assert_eq!(
            table("", &["TOPIC", "PARTITION", "NOTE"], &rows),
            "TOPIC   PARTITION  NOTE\norders  0\n"
        );
    }

    #[test]
    fn ages_read_like_people_write_them() {
        let cases = [
            (None, "-"),
            (Some(0), "0s"),
            (Some(850), "850ms"),
            (Some(42_000), "42s"),
            (Some(192_000), "3m12s"),
            (Some(18_240_000), "5h4m"),
            (Some(183_600_000), "2d3h"),
        ];
        for (ms, text) in cases {
            assert_eq!(age(ms), text);
        }
    }
}
