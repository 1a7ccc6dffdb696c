//! The fake HIS: an in-process writer that keeps every row in memory,
//! records every write it commits, and fails on the simulator's schedule.
//!
//! It is handed to the worker as a plugin's writer is, so the worker
//! cannot tell it from one: as a 1.1 writer ([`WriterBox`], one batch per
//! transaction), or, for schedules whose events write several tables, as
//! a 1.2 writer ([`WriterBoxV1_2`]) that writes all the batches of a call
//! in one transaction. Either way every row of a transaction commits, or
//! none does.

// `#[sabi_trait]`'s generated impls, as in the plugin API.
#![allow(non_local_definitions)]

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
};

use abi_stable::std_types::RSlice;
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr},
};
use his_plugin_api::{
    AbiWriter, AbiWriter_TO, AbiWriterV1_2, AbiWriterV1_2_TO, Actions, Deadline, ErrorKind, PluginError,
    TableDescription, ValueRef, WriteBatch, WriterBox, WriterBoxV1_2,
};

use super::{Shared, rng::Rng};

/// One row as the fake HIS stores it: which event's state it holds.
pub type RowId = (String, String);

/// What the fake HIS holds, and how it may fail.
#[derive(Debug)]
pub struct His {
    /// Table (folded) and row id → the `seq` of the event whose state the
    /// row holds.
    pub rows: HashMap<RowId, i64>,
    /// Every row write committed, in commit order: the row and the `seq`.
    pub history: Vec<(RowId, i64)>,
    /// Row ids locked by "another HIS session": a batch that writes one
    /// fails with a lock timeout, as a real HIS's would.
    pub locked: HashSet<String>,
    /// Events (`seq`) that the HIS refuses for good (a value that does not
    /// fit, say).
    pub poison: HashSet<i64>,
    /// Events (`seq`) whose second target's row committed: a batch with a
    /// column `second`.
    pub second: HashSet<i64>,
    /// Whether writes fail, hang or lose their answers at random.
    pub faults: bool,
    /// This part's draws.
    pub rng: Rng,
}

impl His {
    /// An empty HIS, with faults on.
    pub fn new(rng: Rng) -> Self {
        Self {
            rows: HashMap::new(),
            history: Vec::new(),
            locked: HashSet::new(),
            poison: HashSet::new(),
            second: HashSet::new(),
            faults: true,
            rng,
        }
    }
}

/// A writer onto the shared fake HIS.
pub struct FakeWriter {
    pub shared: Arc<Shared>,
}

/// Opens a 1.1 writer onto the fake HIS: one batch per transaction.
pub fn writer(shared: Arc<Shared>) -> WriterBox {
    AbiWriter_TO::from_value(FakeWriter { shared }, TD_Opaque)
}

/// Opens a 1.2 writer onto the fake HIS: several batches in one
/// transaction.
pub fn writer_v1_2(shared: Arc<Shared>) -> WriterBoxV1_2 {
    AbiWriterV1_2_TO::from_value(FakeWriter { shared }, TD_Opaque)
}

fn dead() -> PluginError {
    PluginError::retryable(ErrorKind::CONNECTION, "the simulated process has crashed")
}

impl FakeWriter {
    /// Upserts every row of `batches` in one transaction; rows are
    /// numbered across the batches, as plugin-api 1.2 says.
    fn upsert(&self, batches: &[WriteBatch]) -> Result<(), PluginError> {
        if self.shared.dead.load(Ordering::SeqCst) {
            return Err(dead());
        }
        // (row, seq, whether it is a second target's row)
        let mut rows: Vec<(RowId, i64, bool)> = Vec::new();
        for batch in batches {
            let column = |name: &str| batch.columns().iter().position(|c| c.as_str().eq_ignore_ascii_case(name));
            let (Some(id_at), Some(seq_at)) = (column("id"), column("seq")) else {
                return Err(PluginError::permanent(ErrorKind::SCHEMA, "the fake HIS has columns id, seq and second"));
            };
            let second = column("second").is_some();
            let table = batch.table().to_ascii_lowercase();
            for row in batch.rows() {
                let id = match row[id_at].get() {
                    ValueRef::Text(text) => text.to_string(),
                    other => return Err(PluginError::permanent(ErrorKind::DATA, format!("id: {other:?}"))),
                };
                let ValueRef::Int(seq) = row[seq_at].get() else {
                    return Err(PluginError::permanent(ErrorKind::DATA, "seq is not an integer"));
                };
                rows.push(((table.clone(), id), seq, second));
            }
        }
        let table = tables(batches);
        let mut his = self.shared.his.lock().unwrap_or_else(|e| e.into_inner());
        let mut after = After::Answer;
        if his.faults {
            match his.rng.below(100) {
                0 => {
                    drop(his);
                    self.shared.note(format!(
                        "HIS: crash before committing {table} seqs {:?}",
                        rows.iter().map(|r| r.1).collect::<Vec<_>>()
                    ));
                    self.shared.crash("in the HIS write, before it committed");
                    return Err(dead());
                }
                1 => after = After::Crash,
                2..6 => {
                    drop(his);
                    self.shared.note(format!(
                        "HIS: connection reset, {table} seqs {:?}",
                        rows.iter().map(|r| r.1).collect::<Vec<_>>()
                    ));
                    return Err(PluginError::retryable(ErrorKind::CONNECTION, "connection reset"));
                }
                6..10 => after = After::Lose(ErrorKind::TIMEOUT),
                10..12 => return Err(PluginError::retryable(ErrorKind::CONFLICT, "deadlock; batch rolled back")),
                12..14 => return Err(PluginError::retryable(ErrorKind::TIMEOUT, "statement timeout; rolled back")),
                _ => {}
            }
        }
        let seqs: Vec<i64> = rows.iter().map(|(_, seq, _)| *seq).collect();
        if let Some(at) = rows.iter().position(|((_, id), _, _)| his.locked.contains(id)) {
            let error = PluginError::retryable(ErrorKind::CONFLICT, "lock wait timeout exceeded");
            drop(his);
            self.shared.note(format!("HIS: lock wait on seq {} of {table} seqs {seqs:?}", rows[at].1));
            return Err(if self.shared.his().rng.chance(50) { error.with_row(at) } else { error });
        }
        if let Some(at) = rows.iter().position(|(_, seq, _)| his.poison.contains(seq)) {
            let error = PluginError::permanent(ErrorKind::DATA, "value too long for its column");
            drop(his);
            self.shared.note(format!("HIS: refuses seq {} of {table} seqs {seqs:?}", rows[at].1));
            return Err(if self.shared.his().rng.chance(50) { error.with_row(at) } else { error });
        }
        for (row, seq, second) in rows {
            his.history.push((row.clone(), seq));
            his.rows.insert(row, seq);
            if second {
                his.second.insert(seq);
            }
        }
        drop(his);
        self.shared.note(format!("HIS: commits {table} seqs {seqs:?}"));
        match after {
            After::Answer => Ok(()),
            After::Crash => {
                self.shared.crash("in the HIS write, after it committed");
                Err(dead())
            }
            After::Lose(kind) => {
                self.shared.note("HIS: ... and its answer is lost".into());
                Err(PluginError::retryable(kind, "committed, but the answer was lost"))
            }
        }
    }
}

/// What happens after a batch commits.
enum After {
    /// The writer answers.
    Answer,
    /// The process dies before the answer.
    Crash,
    /// The answer is lost; the writer reports this error instead.
    Lose(ErrorKind),
}

/// The tables of `batches`, for the trace: `t1`, `t1+t3`.
fn tables(batches: &[WriteBatch]) -> String {
    let mut tables: Vec<String> = batches.iter().map(|b| b.table().to_ascii_lowercase()).collect();
    tables.dedup();
    tables.join("+")
}

impl AbiWriter for FakeWriter {
    fn write(&mut self, batch: &WriteBatch, _deadline: Deadline) -> RResult<(), PluginError> {
        FakeWriter::upsert(self, std::slice::from_ref(batch)).into()
    }

    fn ping(&mut self, _deadline: Deadline) -> RResult<(), PluginError> {
        if self.shared.dead.load(Ordering::SeqCst) { RResult::RErr(dead()) } else { RResult::ROk(()) }
    }

    fn describe_table(
        &mut self,
        _table: RStr<'_>,
        _deadline: Deadline,
    ) -> RResult<ROption<TableDescription>, PluginError> {
        RResult::ROk(ROption::RNone)
    }

    fn actions(&self) -> Actions {
        Actions::UPSERT
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
}

impl AbiWriterV1_2 for FakeWriter {
    fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> RResult<(), PluginError> {
        AbiWriter::write(self, batch, deadline)
    }

    fn ping(&mut self, deadline: Deadline) -> RResult<(), PluginError> {
        AbiWriter::ping(self, deadline)
    }

    fn describe_table(
        &mut self,
        table: RStr<'_>,
        deadline: Deadline,
    ) -> RResult<ROption<TableDescription>, PluginError> {
        AbiWriter::describe_table(self, table, deadline)
    }

    fn actions(&self) -> Actions {
        AbiWriter::actions(self)
    }

    fn close(&mut self) -> RResult<(), PluginError> {
        AbiWriter::close(self)
    }

    fn write_all(&mut self, batches: RSlice<'_, WriteBatch>, _deadline: Deadline) -> RResult<(), PluginError> {
        FakeWriter::upsert(self, batches.as_slice()).into()
    }

    fn writes_batches_together(&self) -> bool {
        true
    }
}
