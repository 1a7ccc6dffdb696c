//! A writer's life beyond one connection: opened again in the same
//! process, and a database that is not there.

use std::path::Path;

use his_plugin_api::{Action, PluginError, Value};

use buktor_middleware::{config, plugins::HisWriter};

use super::{Checked, Kit, Verdict, batch};

impl Kit<'_> {
    /// After the first writer is closed and dropped, a second opens in the
    /// same process, pings and writes. The host's worker drops its writer
    /// after an error (a lost connection, a panic) and opens another, for
    /// the life of the process: a plugin whose global state allows one
    /// open per process stops delivering after the first such error.
    pub(super) fn reopen(&mut self) {
        let verdict = self.second_writer().unwrap_or_else(|verdict| verdict);
        self.report.record("reopen", verdict);
    }

    fn second_writer(&mut self) -> Checked {
        let opened = "with the first writer closed and dropped, a second writer";
        let mut writer = self.open_writer().map_err(|e| {
            Verdict::fail(format!(
                "{opened} could not be opened in the same process: {}. The host opens a writer again after an \
                 error, without restarting",
                self.error(&e)
            ))
        })?;
        writer
            .ping(self.deadline)
            .map_err(|e| Verdict::fail(format!("{opened} was opened, but its ping failed: {}", self.error(&e))))?;
        let wrote = if self.table_written {
            let row = [vec![Value::int(4), Value::text("reopened")]];
            let upsert = batch(&self.table, Action::UPSERT, &["id", "label"], &row);
            self.write(&mut writer, &upsert, &format!("{opened} was opened and pinged, but its upsert of id 4"))?;
            " and upserted id 4"
        } else {
            " (no write: the table could not be written, see upsert)"
        };
        writer.close().map_err(|e| Verdict::fail(format!("{opened} could not be closed: {}", self.error(&e))))?;
        Ok(Verdict::pass(format!("{opened} was opened in the same process, answered a ping{wrote}, and closed")))
    }

    /// With `--unreachable-config`, a database that is not there must be
    /// reported as retryable by the first call that fails: open, ping, or
    /// a write. A permanent error makes the host set its events aside as
    /// failed, where a lost connection must keep them until the database
    /// is back. The kit cannot cut a connection to an arbitrary database,
    /// so without the option the check is not verified.
    pub(super) fn connection_loss(&mut self, unreachable_config: Option<&Path>) {
        const NAME: &str = "connection loss";
        let verdict = match unreachable_config {
            None => Verdict::not_verified(
                "the kit cannot cut a connection to an arbitrary database. Give --unreachable-config FILE, a \
                 his-config.json whose database is not there (a server that does not answer), and the kit checks \
                 that the plugin reports it as retryable",
            ),
            Some(file) => self.unreachable(file).unwrap_or_else(|verdict| verdict),
        };
        self.report.record(NAME, verdict);
    }

    fn unreachable(&mut self, file: &Path) -> Checked {
        let loaded = config::load(file).map_err(|e| Verdict::fail(format!("--unreachable-config: {e}")))?;
        let (theirs, ours) = (loaded.database_type(), self.loaded.database_type());
        if theirs != ours {
            return Err(Verdict::fail(format!(
                "--unreachable-config {}: its database.type is {theirs:?}, the config's is {ours:?}: give the \
                 settings of the plugin under test",
                file.display()
            )));
        }
        let opened = self.plugin.open_writer(&loaded.database_settings_json(), &loaded.dir, self.deadline);
        let mut writer = opened.map_err(|e| self.judge_loss(file, "opening a writer", &e))?;
        let result = self.first_failure(&mut writer);
        let _ = writer.close();
        match result {
            Some((what, e)) => Err(self.judge_loss(file, what, &e)),
            None => Err(Verdict::fail(format!(
                "with {}, a writer opened, pinged, and wrote a row to {}: the file names a database that is there \
                 (then it is the wrong file for this check), or the plugin reports writes it did not make",
                file.display(),
                self.table
            ))),
        }
    }

    /// The first of a ping and a write that fails, with what it was.
    fn first_failure(&mut self, writer: &mut HisWriter) -> Option<(&'static str, PluginError)> {
        if let Err(e) = writer.ping(self.deadline) {
            return Some(("opening a writer succeeded, then its ping", e));
        }
        let row = [vec![Value::int(1), Value::text("unreachable")]];
        let upsert = batch(&self.table, Action::UPSERT, &["id", "label"], &row);
        let e = writer.write(&upsert, self.deadline).err()?;
        Some(("opening a writer and a ping succeeded, then an upsert", e))
    }

    /// The verdict on `what` failing with `e` for a database that is not
    /// there: retryable passes, permanent fails.
    fn judge_loss(&mut self, file: &Path, what: &str, e: &PluginError) -> Verdict {
        let error = self.error(e);
        if e.retryable {
            Verdict::pass(format!(
                "with {}, {what} failed as retryable, as a lost connection must: the host keeps the events and \
                 retries. {error}",
                file.display()
            ))
        } else {
            Verdict::fail(format!(
                "with {}, {what} failed as permanent: the host would set the events aside as failed instead of \
                 keeping them until the database is back. A database that does not answer is retryable. {error}",
                file.display()
            ))
        }
    }
}
