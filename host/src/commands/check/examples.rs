//! Worked examples: each event type's mapping applied to the last event of
//! that type in the journal, as `map` prints it; and a warning for each
//! condition that names a field that event does not carry.
//!
//! They need the config and the journal only: they are shown even when the
//! HIS cannot be reached. The journal is opened read only; without one (a
//! first install) there is nothing to show. The events are real events,
//! with patient data: they are printed to the operator's terminal only.

use buktor_middleware::{
    config::LoadedConfig,
    pipeline::{
        journal::{self, operations},
        mapping::{Mappings, Members},
    },
};

use super::report::{Example, Finding};

/// The examples, and the findings they lead to.
pub(super) fn examples(loaded: &LoadedConfig, mappings: &Mappings) -> (Vec<Example>, Vec<Finding>) {
    let (mut examples, mut findings) = (Vec::new(), Vec::new());
    let Ok(connection) = journal::open_read_only(&loaded.journal_path()) else { return (examples, findings) };
    for event_type in mappings.event_types() {
        let Ok(Some((id, payload, received_at))) = operations::last_of_type(&connection, event_type) else {
            continue;
        };
        let from = format!("the last journaled {event_type} event (id {id})");
        if let (Ok(members), Some(targets)) = (Members::parse(&payload), mappings.targets(event_type)) {
            for target in targets {
                if let Some(when) = &target.when
                    && members.raw(when.member()).is_none()
                {
                    findings.push(Finding::warning(
                        format!("{}.when", target.at),
                        format!(
                            "tests the field {:?}, which {from} does not carry: for such events the condition \
                             `{}` decides as if the field were absent",
                            when.member(),
                            when.describe()
                        ),
                        "check the field's name against the events Buktor sends (buktor-middleware events)",
                    ));
                }
            }
        }
        match crate::commands::map::dry_run(mappings, &payload, &from, &received_at) {
            Ok((text, dry_run)) => {
                examples.push(Example { event_type: event_type.to_string(), event_id: id, text, dry_run })
            }
            Err(error) => findings.push(Finding::warning(
                format!("mapping.{event_type}"),
                format!("{from} cannot be written as the mapping stands: {error:#}"),
                "fix the mapping (or the value map) for such events, then replay the failed ones",
            )),
        }
    }
    (examples, findings)
}
