//! Between the 1.0 types and today's: for a 1.0 plugin in a newer host
//! ([`from_write_batch`]), and a newer plugin in a 1.0 host
//! ([`to_write_batch`]).

use abi_stable::std_types::{RString, RVec};

use super::types::{UpsertBatch, Value as Value10};
use crate::{Action, ErrorKind, PluginError, Value, ValueKind, ValueRef, WriteBatch};

impl Value10 {
    fn new(kind: ValueKind, int: i64, float: f64, text: &str) -> Self {
        Self { kind, int, float, text: RString::from(text) }
    }
}

/// A newer batch as a 1.0 plugin can take it: whole rows to upsert, DATE
/// values as TEXT (as 1.0 hosts sent them). Anything else a 1.0 plugin
/// cannot do is an [`ErrorKind::UNSUPPORTED`] error; the host refuses such
/// mappings at startup, so this is the last line of defence.
pub fn from_write_batch(batch: &WriteBatch) -> Result<UpsertBatch, PluginError> {
    let unsupported = |what: &str| {
        PluginError::permanent(
            ErrorKind::UNSUPPORTED,
            format!("the plugin was built against plugin-api 1.0, which cannot {what}; rebuild it against 1.1"),
        )
    };
    if batch.action() != Action::UPSERT {
        return Err(unsupported(&format!("{} rows", batch.action().name())));
    }
    if !batch.is_whole() {
        return Err(unsupported("leave columns of a row untouched (partial rows)"));
    }
    let values = batch
        .values()
        .iter()
        .map(|value| {
            Ok(match value.get() {
                ValueRef::Null => Value10::new(ValueKind::NULL, 0, 0.0, ""),
                ValueRef::Bool(b) => Value10::new(ValueKind::BOOL, i64::from(b), 0.0, ""),
                ValueRef::Int(i) => Value10::new(ValueKind::INT, i, 0.0, ""),
                ValueRef::Float(f) => Value10::new(ValueKind::FLOAT, 0, f, ""),
                ValueRef::Decimal(s) => Value10::new(ValueKind::DECIMAL, 0, 0.0, s),
                ValueRef::Text(s) | ValueRef::Date(s) => Value10::new(ValueKind::TEXT, 0, 0.0, s),
                ValueRef::Timestamp(s) => Value10::new(ValueKind::TIMESTAMP, 0, 0.0, s),
                ValueRef::Bytes(_) => return Err(unsupported("take bytes")),
                ValueRef::Unknown(kind) => return Err(unsupported(&format!("take a value of kind {kind:?}"))),
            })
        })
        .collect::<Result<RVec<_>, _>>()?;
    Ok(UpsertBatch {
        table: batch.table().into(),
        columns: batch.columns().iter().cloned().collect(),
        key_columns: batch.key_columns().iter().cloned().collect(),
        values,
    })
}

/// A 1.0 host's batch as a newer plugin's writer takes it: an upsert of
/// whole rows.
pub fn to_write_batch(batch: &UpsertBatch) -> WriteBatch {
    let values = batch
        .values
        .iter()
        .map(|v| match v.kind {
            ValueKind::NULL => Value::null(),
            ValueKind::BOOL => Value::bool(v.int != 0),
            ValueKind::INT => Value::int(v.int),
            ValueKind::FLOAT => Value::float(v.float),
            ValueKind::DECIMAL => Value::decimal(v.text.clone()),
            ValueKind::TIMESTAMP => Value::timestamp(v.text.clone()),
            _ => Value::text(v.text.clone()),
        })
        .collect();
    WriteBatch::new(batch.table.clone(), Action::UPSERT, batch.columns.clone(), batch.key_columns.clone(), values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IfMissing;

    fn batch(values: Vec<Value>) -> WriteBatch {
        let columns: RVec<RString> = (0..values.len()).map(|i| RString::from(format!("c{i}"))).collect();
        let key = RVec::from(vec![columns[0].clone()]);
        WriteBatch::new("t", Action::UPSERT, columns, key, values.into())
    }

    #[test]
    fn values_survive_the_round_trip_and_dates_travel_as_text() {
        let values = vec![
            Value::int(7),
            Value::null(),
            Value::bool(true),
            Value::float(1.5),
            Value::decimal("12.50"),
            Value::text("x"),
            Value::timestamp("2025-03-03T09:00:00Z"),
        ];
        let old = from_write_batch(&batch(values.clone())).unwrap();
        assert_eq!(to_write_batch(&old), batch(values));

        let dated = from_write_batch(&batch(vec![Value::int(1), Value::date("1990-05-17")])).unwrap();
        assert_eq!(to_write_batch(&dated).values()[1].get(), ValueRef::Text("1990-05-17"));
    }

    #[test]
    fn what_1_0_cannot_do_is_refused_by_name() {
        let bytes = from_write_batch(&batch(vec![Value::int(1), Value::bytes(vec![1])])).unwrap_err();
        assert!(bytes.message.contains("cannot take bytes"), "{bytes}");
        let mut delete = batch(vec![Value::int(1)]);
        delete = WriteBatch::new(
            "t",
            Action::DELETE,
            delete.columns().into(),
            delete.key_columns().into(),
            delete.into_values(),
        );
        let e = from_write_batch(&delete).unwrap_err();
        assert!(e.message.contains("cannot delete rows"), "{e}");
        let update = WriteBatch::new(
            "t",
            Action::update(IfMissing::Ignore),
            vec![RString::from("a")].into(),
            vec![RString::from("a")].into(),
            vec![Value::int(1)].into(),
        );
        assert!(from_write_batch(&update).unwrap_err().message.contains("cannot update rows"));
        let partial = batch(vec![Value::int(1), Value::null()]).with_presence(|_, c| c == 0);
        assert!(from_write_batch(&partial).unwrap_err().message.contains("partial rows"));
        assert_eq!(from_write_batch(&partial).unwrap_err().kind, ErrorKind::UNSUPPORTED);
    }
}
