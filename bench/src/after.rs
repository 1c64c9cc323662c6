//! What the bench does with a run's JSON once it is written (or with an earlier run's, with
//! `--from`): the IPython parallel comparison and the charts.

use serde_json::{Value, json};
use std::path::Path;

use crate::options::Extra;
use crate::{charts, compare};

/// Prints `--compare`'s rows, draws `--charts`, and adds both to the run's JSON (not to a
/// `--from` file, which is only read).
pub(crate) fn after_run(json_path: &Path, extra: &Extra) -> anyhow::Result<()> {
    if extra.compare.is_none() && extra.charts.is_none() && extra.markdown.is_none() {
        return Ok(());
    }
    let source = extra.from.as_deref().unwrap_or(json_path);
    let mut document = read(source)?;
    if let Some(file) = &extra.compare {
        let (rows, comparison) = compare::compare(&document["results"], &read(file)?)?;
        println!();
        if rows.is_empty() {
            println!(
                "(--compare: no figure of this run is in {})",
                file.display()
            );
        }
        for [name, figure, versus, target] in &rows {
            println!("{name:<34} {figure:<30} {versus:<34} {target}");
        }
        if let Some(table) = document["table"].as_array_mut() {
            table.extend(rows.iter().map(|r| json!(r)));
        }
        document["compare"] = json!({"file": file, "results": comparison});
    }
    if let Some(dir) = &extra.charts {
        let written = charts::draw(&document["results"], dir)?;
        for path in &written {
            println!("wrote {}", path.display());
        }
        document["charts"] = json!(written);
    }
    if let Some(path) = &extra.markdown {
        std::fs::write(path, markdown(&document["table"]))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if extra.from.is_none() {
        std::fs::write(json_path, serde_json::to_string_pretty(&document)? + "\n")?;
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))
}

/// The table's rows as a Markdown table (a `|` in a cell escaped).
fn markdown(table: &Value) -> String {
    let cell = |v: &Value| v.as_str().unwrap_or("").replace('|', "\\|");
    let mut out =
        String::from("| scenario | warren | baseline (same run) | target |\n|---|---|---|---|\n");
    for row in table.as_array().map_or(&[][..], Vec::as_slice) {
        let cells: Vec<String> = row
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(cell)
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}
