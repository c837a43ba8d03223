//! Rendering results: a table for people, JSON or YAML for programs.

use super::{Failure, out};
use clap::ValueEnum;
use comfy_table::{Table, presets};
use serde::Serialize;
use std::io::IsTerminal;

/// `-o/--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

impl OutputFormat {
    /// A table when a person reads standard output, JSON when a program does.
    pub fn for_stdout() -> Self {
        if std::io::stdout().is_terminal() {
            Self::Table
        } else {
            Self::Json
        }
    }
}

/// Something that can be shown as a table.
pub trait Tabular {
    /// Column titles and rows; a single resource answers field/value rows.
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>);
}

/// Prints `value` in `format`.
pub fn emit<T: Serialize + Tabular>(format: OutputFormat, value: &T) -> Result<(), Failure> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Failure::Usage(format!("cannot render JSON: {e}")))?,
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)
            .map_err(|e| Failure::Usage(format!("cannot render YAML: {e}")))?,
        OutputFormat::Table => {
            let (header, rows) = value.table();
            render_table(header, rows)
        }
    };
    out(&text);
    Ok(())
}

/// A borderless table in the style of `kubectl get`.
pub fn render_table(header: Vec<&'static str>, rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() && header.len() > 2 {
        return "(none)".into();
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header);
    }
    for row in rows {
        table.add_row(row);
    }
    // The NOTHING preset pads every cell by one space; trim the left margin it leaves.
    table
        .lines()
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last segment of a reference URI (`…/instance-types/e2-small` → `e2-small`).
pub fn last_segment(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

/// A timestamp to the second, in UTC.
pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A field/value table of one resource; fields without a value are left out.
pub fn fields(pairs: Vec<(&'static str, String)>) -> (Vec<&'static str>, Vec<Vec<String>>) {
    (
        Vec::new(),
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
    )
}
