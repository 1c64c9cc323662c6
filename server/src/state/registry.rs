//! The engines connected to the hub, and the ids their uuids keep across reconnects and restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use warren_proto::v1::{EngineInfo, Hello, HubMessage, hub_message};

/// Where messages to an engine go: its registration stream's response half.
pub(crate) type EngineTx = mpsc::UnboundedSender<HubMessage>;

/// A connected engine and the tasks it runs.
#[derive(Debug)]
pub(super) struct Engine {
    /// The hub's id for it.
    pub(super) id: u32,
    /// Which registration stream this is, so a stale stream can't remove a newer one.
    pub(super) connection: u64,
    /// What it said about itself.
    pub(super) hello: Hello,
    /// When it registered, microseconds since the epoch.
    registered_us: i64,
    /// When the hub last heard from it.
    pub(super) last_seen: Instant,
    tx: EngineTx,
    /// The task reading its stream, stopped when the engine is written off.
    pub(super) reader: Option<AbortHandle>,
    /// Tasks assigned to it and not yet finished.
    active: HashSet<u64>,
    /// Those of `active` that are cells: they run in sessions and take no slot.
    cells: HashSet<u64>,
    /// Why it was told to exit, if it was: its leaving is then expected, not a loss.
    pub(super) told_to_exit: Option<String>,
}

impl Engine {
    /// Tasks and cells assigned to it and not yet finished.
    pub(super) fn active(&self) -> &HashSet<u64> {
        &self.active
    }

    /// Whether it runs this task now.
    pub(super) fn runs(&self, task_id: u64) -> bool {
        self.active.contains(&task_id)
    }

    /// The tasks it ran, once it is gone.
    pub(super) fn into_active(self) -> HashSet<u64> {
        self.active
    }

    /// Counts a task as running there.
    pub(super) fn take(&mut self, task_id: u64) {
        self.active.insert(task_id);
    }

    /// Counts a cell as sent there (in `active`, but taking no slot).
    pub(super) fn take_cell(&mut self, task_id: u64) {
        self.active.insert(task_id);
        self.cells.insert(task_id);
    }

    /// Tasks (not cells) assigned to it and not yet finished.
    pub(super) fn task_count(&self) -> usize {
        self.active.len() - self.cells.len()
    }

    /// Stops the task reading its stream (the engine is written off, or the hub stops).
    pub(super) fn stop_reader(&self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }

    /// Tasks it can run at once (at least one).
    pub(super) fn slots(&self) -> usize {
        self.hello.slots.max(1) as usize
    }

    /// Whether it can take another task now.
    pub(super) fn has_free_slot(&self) -> bool {
        self.task_count() < self.slots()
    }

    /// Whether it has every one of these labels.
    pub(super) fn has_labels(&self, wanted: &HashMap<String, String>) -> bool {
        wanted
            .iter()
            .all(|(key, value)| self.hello.labels.get(key) == Some(value))
    }

    /// Where messages to it go, for a relay that sends many without the hub's lock.
    pub(super) fn sender(&self) -> EngineTx {
        self.tx.clone()
    }

    /// Sends a message; if the engine is gone, its stream's end will clean up after it.
    pub(super) fn send(&self, kind: hub_message::Kind) {
        let _ = self.tx.send(HubMessage { kind: Some(kind) });
    }

    /// The engine as `ListEngines` shows it, with its queue length.
    pub(super) fn info(&self, queued: usize) -> EngineInfo {
        EngineInfo {
            id: self.id,
            uuid: self.hello.uuid.clone(),
            hostname: self.hello.hostname.clone(),
            pid: self.hello.pid,
            labels: self.hello.labels.clone(),
            slots: self.slots() as u32,
            version: self.hello.version.clone(),
            running: self.task_count() as u32,
            queued: queued as u32,
            registered_us: self.registered_us,
            sessions: 0,
            files: self.hello.files,
        }
    }

    /// How people should hear of this engine in messages.
    pub(super) fn describe(&self) -> String {
        describe(self.id, &self.hello.hostname, self.hello.pid)
    }
}

/// How people should hear of an engine in messages.
fn describe(id: u32, hostname: &str, pid: u32) -> String {
    format!("engine {id} ({hostname} pid {pid})")
}

/// An engine the hub remembers (as the database's engines table does): its id, and when it
/// last registered.
#[derive(Clone, Copy, Debug)]
struct Record {
    id: u32,
    registered_us: i64,
}

/// All connected engines, by id, and the id of every uuid remembered.
#[derive(Debug, Default)]
pub(super) struct Registry {
    engines: BTreeMap<u32, Engine>,
    records: HashMap<String, Record>,
    /// The highest id ever handed out: ids only grow, even across forgotten engines and
    /// restarts, so a forgotten engine's id never names another.
    last_id: u32,
    next_connection: u64,
    /// Woken whenever an engine has fewer tasks: one ended, or the engine left.
    quieter: Arc<Notify>,
}

impl Registry {
    /// A registry that remembers these engines (id, uuid, last registration, from the
    /// database) and has handed out ids up to `last_id`.
    /// `quieter` is woken whenever an engine has fewer tasks.
    pub(super) fn remembering(
        known: Vec<(u32, String, i64)>,
        last_id: u32,
        quieter: Arc<Notify>,
    ) -> Self {
        let last_id = known.iter().map(|(id, ..)| *id).fold(last_id, u32::max);
        Self {
            engines: BTreeMap::new(),
            records: known
                .into_iter()
                .map(|(id, uuid, registered_us)| (uuid, Record { id, registered_us }))
                .collect(),
            last_id,
            next_connection: 0,
            quieter,
        }
    }

    /// The id for a uuid, new if not remembered; and whether it is new. Notes the time.
    pub(super) fn id_for(&mut self, uuid: &str, now_us: i64) -> (u32, bool) {
        if let Some(record) = self.records.get_mut(uuid) {
            record.registered_us = now_us;
            return (record.id, false);
        }
        self.last_id += 1;
        let id = self.last_id;
        self.records.insert(
            uuid.to_owned(),
            Record {
                id,
                registered_us: now_us,
            },
        );
        (id, true)
    }

    /// Forgets engines that are not connected and not `needed`: those that last registered
    /// before `before_us`, then the oldest while more than `keep` are remembered beside the
    /// connected ones. Returns the ids forgotten, for the database.
    pub(super) fn forget(
        &mut self,
        before_us: i64,
        keep: usize,
        needed: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let mut idle: Vec<(i64, u32, String)> = self
            .records
            .iter()
            .filter(|(_, r)| !self.engines.contains_key(&r.id) && !needed(r.id))
            .map(|(uuid, r)| (r.registered_us, r.id, uuid.clone()))
            .collect();
        let excess = self
            .records
            .len()
            .saturating_sub(self.engines.len())
            .saturating_sub(keep);
        idle.sort_unstable();
        let mut forgotten = Vec::new();
        for (i, (registered_us, id, uuid)) in idle.into_iter().enumerate() {
            if i >= excess && registered_us >= before_us {
                break;
            }
            self.records.remove(&uuid);
            forgotten.push(id);
        }
        forgotten
    }

    /// How many engines are remembered, connected or not.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.records.len()
    }

    /// Adds an engine under `id`, heard from at `now`. A still-connected engine with the same
    /// id is replaced and returned so its work can be settled.
    pub(super) fn insert(
        &mut self,
        id: u32,
        hello: Hello,
        tx: EngineTx,
        now_us: i64,
        now: Instant,
    ) -> (u64, Option<Engine>) {
        self.next_connection += 1;
        let engine = Engine {
            id,
            connection: self.next_connection,
            hello,
            registered_us: now_us,
            last_seen: now,
            tx,
            reader: None,
            active: HashSet::new(),
            cells: HashSet::new(),
            told_to_exit: None,
        };
        let replaced = self.engines.insert(id, engine);
        self.quieter_if(replaced.is_some());
        (self.next_connection, replaced)
    }

    /// The engine no longer runs this task; says whether it did.
    pub(super) fn release(&mut self, id: u32, task_id: u64) -> bool {
        let released = self.engines.get_mut(&id).is_some_and(|engine| {
            engine.cells.remove(&task_id);
            engine.active.remove(&task_id)
        });
        self.quieter_if(released);
        released
    }

    /// Removes the engine if `connection` is still its current stream.
    pub(super) fn remove(&mut self, id: u32, connection: u64) -> Option<Engine> {
        match self.engines.get(&id) {
            Some(engine) if engine.connection == connection => self.remove_any(id),
            _ => None,
        }
    }

    /// Removes the engine whatever its stream.
    pub(super) fn remove_any(&mut self, id: u32) -> Option<Engine> {
        let removed = self.engines.remove(&id);
        self.quieter_if(removed.is_some());
        removed
    }

    /// Removes every engine (the hub is stopping).
    pub(super) fn drain(&mut self) -> Vec<Engine> {
        let engines: Vec<Engine> = std::mem::take(&mut self.engines).into_values().collect();
        self.quieter_if(!engines.is_empty());
        engines
    }

    /// Whether any engine runs a task.
    pub(super) fn busy(&self) -> bool {
        self.engines.values().any(|e| !e.active.is_empty())
    }

    fn quieter_if(&self, fewer: bool) {
        if fewer {
            self.quieter.notify_waiters();
        }
    }

    /// The engine with this id.
    pub(super) fn get(&self, id: u32) -> Option<&Engine> {
        self.engines.get(&id)
    }

    /// The engine with this id, to change.
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Engine> {
        self.engines.get_mut(&id)
    }

    /// The engine with this id, only if `connection` is its current stream.
    pub(super) fn current(&mut self, id: u32, connection: u64) -> Option<&mut Engine> {
        self.engines
            .get_mut(&id)
            .filter(|engine| engine.connection == connection)
    }

    /// Every engine, by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Engine> {
        self.engines.values()
    }

    /// Every engine's id, in order.
    pub(super) fn ids(&self) -> Vec<u32> {
        self.engines.keys().copied().collect()
    }

    /// How many engines are connected.
    pub(super) fn len(&self) -> usize {
        self.engines.len()
    }

    /// Whether no engine is connected.
    pub(super) fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_ids_are_never_handed_out_again() {
        let mut registry = Registry::remembering(vec![(3, "old".into(), 10)], 7, Arc::default());
        assert_eq!(registry.id_for("old", 20), (3, false));
        assert_eq!(
            registry.id_for("new", 20),
            (8, true),
            "past every id ever used"
        );
        for (i, uuid) in ["a", "b", "c"].iter().enumerate() {
            registry.id_for(uuid, 30 + i as i64);
        }
        // Keep two of five: the oldest go first, but a needed one stays whatever its age.
        let forgotten = registry.forget(0, 2, |id| id == 3);
        assert_eq!(forgotten, vec![8, 9, 10]);
        assert_eq!(registry.remembered(), 2);
        // By age: everything idle that last registered before 33.
        assert_eq!(registry.forget(33, 100, |_| false), vec![3, 11]);
        assert_eq!(
            registry.id_for("new", 40),
            (12, true),
            "a forgotten uuid gets a new id"
        );
    }
}
