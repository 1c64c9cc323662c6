//! What the hub says of itself: its engines, its queue, its version.

use warren::Client;

use super::tasks::engine_text;
use crate::cli::Format;
use crate::format::{print_ids, print_json};
use crate::table::{Align, Table};
use crate::time;

/// Prints the engines as a table (their ids with -q, `ListEngines`' reply with --json).
pub(crate) async fn engines(client: &Client, format: Format) -> anyhow::Result<u8> {
    let engines = client.engines().await?;
    match format {
        Format::Json => {
            print_json(&warren::proto::ListEnginesReply { engines })?;
            return Ok(0);
        }
        Format::Quiet => {
            print_ids(engines.iter().map(|e| e.id))?;
            return Ok(0);
        }
        Format::Text => {}
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("HOST", Align::Left),
        ("PID", Align::Right),
        ("SLOTS", Align::Right),
        ("RUNNING", Align::Right),
        ("QUEUED", Align::Right),
        ("FILES", Align::Left),
        ("LABELS", Align::Left),
    ]);
    for e in &engines {
        let mut labels: Vec<_> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        table.row(vec![
            e.id.to_string(),
            e.hostname.clone(),
            e.pid.to_string(),
            e.slots.to_string(),
            e.running.to_string(),
            e.queued.to_string(),
            if e.files { "yes" } else { "no" }.into(),
            labels.join(","),
        ]);
    }
    table.print();
    Ok(0)
}

/// Prints the queues (`QueueStatus`' reply with --json, nothing with -q).
pub(crate) async fn queue(client: &Client, format: Format) -> anyhow::Result<u8> {
    let status = client.queue_status().await?;
    match format {
        Format::Json => return print_json(&status).map(|()| 0),
        Format::Quiet => return Ok(0),
        Format::Text => {}
    }
    println!("waiting for any engine: {}", status.unassigned);
    println!("tasks in the hub's memory: {}", status.tasks_in_memory);
    let mut table = Table::new(&[
        ("ENGINE", Align::Right),
        ("SLOTS", Align::Right),
        ("RUNNING", Align::Right),
        ("QUEUED", Align::Right),
    ]);
    for e in &status.engines {
        table.row(vec![
            engine_text(e.engine_id),
            e.slots.to_string(),
            e.running.to_string(),
            e.queued.to_string(),
        ]);
    }
    table.print();
    Ok(0)
}

/// Prints this warren's version and the hub's, its id and its clock (`GetVersion`'s reply
/// with --json, nothing with -q).
pub(crate) async fn version(client: &Client, format: Format) -> anyhow::Result<u8> {
    let version = client.version().await?;
    match format {
        Format::Json => return print_json(&version).map(|()| 0),
        Format::Quiet => return Ok(0),
        Format::Text => {}
    }
    println!("warren     {}", warren_proto::VERSION);
    println!(
        "hub        {} (protocol {})",
        version.hub_version, version.protocol_version
    );
    println!("hub id     {}", version.hub_id);
    println!(
        "hub clock  {} ({})",
        time::local_seconds(version.hub_time),
        time::skew(version.hub_time, warren_proto::now_us())
    );
    Ok(0)
}
