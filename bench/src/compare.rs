//! `--compare FILE`: warren's figures side by side with IPython parallel's on the same
//! scenarios (the JSON of tests/ipyparallel/run.sh), as rows of the bench's table.

use serde_json::{Value, json};

/// One comparison: which of IPython parallel's scenarios, which of warren's figures, and
/// whether less is better.
struct Pair {
    label: &'static str,
    /// IPython parallel's scenarios whose names start with this.
    ipp_prefix: &'static str,
    /// Its figure, and the factor to warren's unit.
    ipp_key: &'static str,
    ipp_factor: f64,
    /// warren's scenario and figure, and the factor to the unit shown.
    warren: (&'static str, &'static str, f64),
    unit: &'static str,
    lower_is_better: bool,
}

const PAIRS: [Pair; 6] = [
    Pair {
        label: "round trip p50",
        ipp_prefix: "roundtrip",
        ipp_key: "p50_ms",
        ipp_factor: 1.0,
        warren: ("roundtrip_true", "p50_ms", 1.0),
        unit: "ms",
        lower_is_better: true,
    },
    Pair {
        label: "throughput",
        ipp_prefix: "throughput",
        ipp_key: "tasks_per_s",
        ipp_factor: 1.0,
        warren: ("throughput_true", "tasks_per_s", 1.0),
        unit: "tasks/s",
        lower_is_better: false,
    },
    Pair {
        label: "stdout stream",
        ipp_prefix: "stream",
        ipp_key: "mb_per_s",
        ipp_factor: 1.0,
        warren: ("stream", "gb_per_s", 1000.0),
        unit: "MB/s",
        lower_is_better: false,
    },
    Pair {
        label: "cluster start, 2 engines",
        ipp_prefix: "cluster_start",
        ipp_key: "seconds",
        ipp_factor: 1000.0,
        warren: ("cluster_start_2", "p50_ms", 1.0),
        unit: "ms",
        lower_is_better: true,
    },
    Pair {
        label: "`pass` cell round trip p50",
        ipp_prefix: "session_roundtrip",
        ipp_key: "p50_ms",
        ipp_factor: 1.0,
        warren: ("session_roundtrip_pass", "p50_ms", 1.0),
        unit: "ms",
        lower_is_better: true,
    },
    Pair {
        label: "cells pipelined, 2 sessions",
        ipp_prefix: "session_execute_pipelined",
        ipp_key: "cells_per_s",
        ipp_factor: 1.0,
        warren: ("session_cells_pipelined", "cells_per_s", 1.0),
        unit: "cells/s",
        lower_is_better: false,
    },
];

/// The table rows and the JSON of the comparison of warren's `results` with IPython
/// parallel's document.
pub(crate) fn compare(results: &Value, ipp: &Value) -> anyhow::Result<(Vec<[String; 4]>, Value)> {
    let scenarios = ipp["scenarios"].as_object().ok_or_else(|| {
        anyhow::anyhow!("no \"scenarios\" object: is this tests/ipyparallel/run.sh's JSON?")
    })?;
    let version = ipp["version"].as_str().unwrap_or("?");
    let (mut rows, mut pairs) = (Vec::new(), Vec::new());
    for pair in &PAIRS {
        let (scenario, key, factor) = pair.warren;
        let Some(ours) = results[scenario][key].as_f64().map(|v| v * factor) else {
            continue;
        };
        for (name, figures) in scenarios
            .iter()
            .filter(|(n, _)| n.starts_with(pair.ipp_prefix))
        {
            let Some(theirs) = figures[pair.ipp_key].as_f64().map(|v| v * pair.ipp_factor) else {
                continue;
            };
            if ours <= 0.0 || theirs <= 0.0 {
                continue;
            }
            let ahead = if pair.lower_is_better {
                theirs / ours
            } else {
                ours / theirs
            };
            rows.push([
                format!("vs IPython parallel: {}", pair.label),
                format!("warren {} {}", round(ours), pair.unit),
                format!("ipyparallel {} {} ({name})", round(theirs), pair.unit),
                format!(
                    "warren ×{ahead:.2} {}",
                    if ahead >= 1.0 { "ahead" } else { "BEHIND" }
                ),
            ]);
            pairs.push(
                json!({"figure": pair.label, "unit": pair.unit, "warren": ours,
                              "ipyparallel_scenario": name, "ipyparallel": theirs,
                              "warren_advantage": ahead}),
            );
        }
    }
    Ok((
        rows,
        json!({"ipyparallel_version": version, "pairs": pairs}),
    ))
}

fn round(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}
