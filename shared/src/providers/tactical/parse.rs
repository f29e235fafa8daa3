//! What the client makes of a Tactical answer's body, as plain functions of the body: the list
//! shapes (bare array or DRF page), the active-alert list, one agent, the agent pages and the
//! software stream. The client calls these after its transport checks; the fuzz targets and
//! property tests call them directly. None of them panics, whatever the input; memory stays
//! proportional to the input (serde_json's recursion limit bounds nesting), the agent readers hold
//! each agent in its compact form ([`AgentRecord`]) and the software reader one row at a time.

use std::fmt;
use std::io::Read;

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::model::{Agent, AgentRecord, Alert, Page, RawRecord, SoftwareRow};

/// One answer of a beta list endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T = Value> {
    /// The records of this answer (as received, for [`Value`]s).
    pub items: Vec<T>,
    /// Whether a `next` page follows (a bare array is the whole list).
    pub has_next: bool,
}

/// A beta list answer: a bare JSON array is the whole list (the client list on the real
/// server); an object is a DRF page whose `next` says whether another follows.
pub fn list_page(value: Value) -> Result<ListPage, serde_json::Error> {
    read_list_page(value)
}

/// [`list_page`] from any JSON source, each record read as a `T`.
pub fn read_list_page<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<ListPage<T>, D::Error> {
    d.deserialize_any(ListPageVisitor(PhantomData))
}

/// A `GET /beta/v1/agent/` answer read from `reader` as it arrives, each agent in its compact
/// form ([`AgentRecord`]): no agent's `wmi_detail` or `services` tree is ever built, so memory
/// holds the page's compact agents and the reader's buffer, whatever the body's size. Anything
/// after the answer other than whitespace is an error.
pub fn read_agent_page<R: Read>(reader: R) -> Result<ListPage<Agent>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let page: ListPage<AgentRecord> = read_list_page(&mut de)?;
    de.end()?;
    Ok(ListPage { items: page.items.into_iter().map(|r| r.0).collect(), has_next: page.has_next })
}

struct ListPageVisitor<T>(PhantomData<T>);

const NOT_A_LIST: &str = "expected a JSON array or a page object";

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListPageVisitor<T> {
    type Value = ListPage<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array or a page object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListPage<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(ListPage { items, has_next: false })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListPage<T>, A::Error> {
        let page = Page::<T>::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let has_next = page.next.as_deref().is_some_and(|n| !n.is_empty());
        Ok(ListPage { items: page.results, has_next })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }

    fn visit_unit<E: de::Error>(self) -> Result<ListPage<T>, E> {
        Err(E::custom(NOT_A_LIST))
    }
}

/// The typed records of a list answer ([`list_page`] then [`RawRecord::from_value`] for each).
pub fn records<T: RawRecord>(value: Value) -> Result<(Vec<T>, bool), serde_json::Error> {
    let page = list_page(value)?;
    let items = page.items.into_iter().map(T::from_value).collect::<Result<Vec<_>, _>>()?;
    Ok((items, page.has_next))
}

/// An agent detail answer (`GET /agents/<agent_id>/`, `GET /beta/v1/agent/<pk>/`): an object.
pub fn agent_detail(value: Value) -> Result<Agent, serde_json::Error> {
    if !value.is_object() {
        return Err(de::Error::custom("expected an object"));
    }
    Agent::from_value(value)
}

/// [`agent_detail`] from the answer's bytes, without building its `wmi_detail` tree.
pub fn agent_detail_from_slice(body: &[u8]) -> Result<Agent, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let agent = AgentRecord::deserialize(&mut de)?;
    de.end()?;
    Ok(agent.0)
}

/// The answer of `PATCH /alerts/` with a filter: an array, or an object holding it under
/// `results` or `alerts`.
pub fn active_alerts(value: Value) -> Result<Vec<Alert>, serde_json::Error> {
    let items = match value {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("results").or_else(|| o.remove("alerts")) {
            Some(Value::Array(a)) => a,
            _ => return Err(de::Error::custom("no alert list")),
        },
        _ => return Err(de::Error::custom("no alert list")),
    };
    items.into_iter().map(Alert::from_value).collect()
}

/// `GET /software/<agent_id>/`: `[]` (none), `[row]`, or the row itself.
pub fn agent_software(value: Value) -> Result<Option<SoftwareRow>, serde_json::Error> {
    match value {
        Value::Array(a) if a.is_empty() => Ok(None),
        Value::Array(a) => a.into_iter().next().map(serde_json::from_value).transpose(),
        v => serde_json::from_value(v).map(Some),
    }
}

/// The error text [`read_software_rows`] stops with when `on_row` asks it to.
pub const SOFTWARE_STOPPED: &str = "software stream cancelled";

/// Reads `GET /software/` (a JSON array of rows) from `reader`, handing each row to `on_row` as
/// soon as it is complete; only one row is held at a time. `on_row` returns `false` to stop
/// (the result is then an error whose text contains [`SOFTWARE_STOPPED`]). Anything after the
/// array other than whitespace is an error.
pub fn read_software_rows<R: Read>(
    reader: R,
    on_row: impl FnMut(SoftwareRow) -> bool,
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    (&mut de).deserialize_seq(RowVisitor { on_row })?;
    de.end()
}

struct RowVisitor<F> {
    on_row: F,
}

impl<'de, F: FnMut(SoftwareRow) -> bool> Visitor<'de> for RowVisitor<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of software rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<SoftwareRow>()? {
            if !(self.on_row)(row) {
                return Err(de::Error::custom(SOFTWARE_STOPPED));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::tactical::model::Client;

    #[test]
    fn list_shapes() {
        let p = list_page(json!([{"id": 1}])).unwrap();
        assert_eq!((p.items.len(), p.has_next), (1, false));
        let p = list_page(json!({"count": 3, "next": "http://x/?page=2", "results": [{"id": 1}]})).unwrap();
        assert!(p.has_next);
        let p = list_page(json!({"count": 3, "next": "", "results": []})).unwrap();
        assert!(!p.has_next);
        assert_eq!(list_page(json!("x")).unwrap_err().to_string(), "expected a JSON array or a page object");
        assert!(list_page(json!({"count": 1})).is_err());
        let (clients, _) = records::<Client>(json!([{"id": 7, "name": "Acme"}])).unwrap();
        assert_eq!(clients[0].name, "Acme");
        assert!(records::<Client>(json!([{"name": "no id"}])).is_err());
    }

    #[test]
    fn alert_and_software_shapes() {
        assert_eq!(active_alerts(json!({"alerts": [{"id": 1}]})).unwrap().len(), 1);
        assert_eq!(active_alerts(json!(5)).unwrap_err().to_string(), "no alert list");
        assert_eq!(agent_software(json!([])).unwrap(), None);
        assert_eq!(agent_software(json!([{"id": 1, "agent": 2}])).unwrap().unwrap().agent, 2);
        let mut n = 0;
        read_software_rows(&br#"[{"id":1,"agent":2,"software":[]},{"id":2,"agent":3}] "#[..], |_| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, 2);
        let e = read_software_rows(&br#"[{"id":1,"agent":2},{"id":2,"agent":3}]"#[..], |_| false).unwrap_err();
        assert!(e.to_string().contains(SOFTWARE_STOPPED));
        assert!(read_software_rows(&b"[] x"[..], |_| true).is_err());
    }
}
