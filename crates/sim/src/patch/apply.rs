//! Server-side apply and field-manager bookkeeping (`metadata.managedFields`).
//!
//! Every write records who owns which fields. An *apply* states a manager's
//! whole intent: its field set replaces what it owned before, fields it
//! stops sending are removed unless another manager still owns them, and
//! taking a field another manager owns with a different value is a conflict
//! unless forced. An *update* (PUT, or any patch that is not apply) gives
//! the writer every field it changed and takes those fields from everyone
//! else, which is how `kubectl edit` steals fields.
//!
//! Managers are told apart the way the server tells them apart: by name,
//! operation and subresource, and for updates also by API version.
//!
//! Two things need schema knowledge the emulator lacks, and are
//! approximated: which objects are maps rather than structs (an update
//! that creates a map owns the map itself, written `".": {}`; a few
//! well-known map fields are recognised by name), and default values of
//! list keys (an applied item must spell out every key it is matched on).

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::ListKeys;
use super::fieldset::{
    FieldSet, PathElement, display_path, item_element, item_element_or_index, raw_holds,
    raw_intersects,
};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// Metadata the server alone writes: never merged from an applied
/// configuration and never owned.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Metadata that names the object: merged (a create needs it) but owned by
/// nobody.
const IDENTITY_METADATA: &[&str] = &["name", "namespace"];

/// Map-typed fields of built-in kinds (`map[string]string` and friends),
/// recognised by name because there is no schema to ask.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "matchLabels",
    "data",
    "binaryData",
    "stringData",
    "limits",
    "requests",
    "capacity",
    "allocatable",
];

/// How to perform a server-side apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// The `fieldManager` of the request.
    pub manager: String,
    /// `force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// The subresource written through (`Some("status")`), if any.
    pub subresource: Option<String>,
    /// RFC 3339 time to stamp on the manager's entry; `None` means now.
    pub now: Option<String>,
    /// Field paths (names from the root, list items not counted) this
    /// write may not touch, such as `["status"]` on the main resource of a
    /// kind with a status subresource. They are neither merged nor owned.
    pub ignored_fields: Vec<Vec<String>>,
}

impl ApplyOptions {
    pub fn new(manager: impl Into<String>) -> ApplyOptions {
        ApplyOptions {
            manager: manager.into(),
            ..ApplyOptions::default()
        }
    }
}

/// How to record an update.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// The `fieldManager` of the request.
    pub manager: String,
    /// The subresource written through (`Some("status")`), if any.
    pub subresource: Option<String>,
    /// RFC 3339 time to stamp on the manager's entry; `None` means now.
    pub now: Option<String>,
    /// Field paths whose changes are not attributed to anyone (see
    /// [`ApplyOptions::ignored_fields`]).
    pub ignored_fields: Vec<Vec<String>>,
}

impl UpdateOptions {
    pub fn new(manager: impl Into<String>) -> UpdateOptions {
        UpdateOptions {
            manager: manager.into(),
            ..UpdateOptions::default()
        }
    }
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictDetail {
    /// Field path as the server prints it, e.g. `.spec.replicas`.
    pub field: String,
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub subresource: Option<String>,
    /// When the owner last wrote, if recorded.
    pub time: Option<String>,
}

impl ConflictDetail {
    /// The owner as the server names it in messages:
    /// `"kubectl-edit" using v1 at 2024-05-01T10:00:00Z`.
    pub fn owner(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                out.push_str(&format!(" at {time}"));
            }
        }
        out
    }

    /// The message of this conflict's `FieldManagerConflict` status cause.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner())
    }

    pub fn to_conflict(&self) -> super::ApplyConflict {
        super::ApplyConflict {
            field: self.field.clone(),
            manager: self.manager.clone(),
        }
    }
}

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("apply failed with {} conflict(s): {}", .0.len(), conflict_list(.0))]
    Conflicts(Vec<ConflictDetail>),
    #[error("invalid applied configuration: {0}")]
    Invalid(String),
}

fn conflict_list(conflicts: &[ConflictDetail]) -> String {
    conflicts
        .iter()
        .map(|c| format!("{}: {}", c.cause_message(), c.field))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApplyError {
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "conflict",
            ApplyError::Invalid(_) => "invalid",
        }
    }

    /// The message the API server puts in the 409 `Status`, word for word.
    pub fn status_message(&self) -> String {
        let ApplyError::Conflicts(conflicts) = self else {
            return self.to_string();
        };
        if let [only] = conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.owner(),
                only.field
            );
        }
        let mut lines = Vec::new();
        let mut previous: Option<String> = None;
        for c in conflicts {
            let owner = c.owner();
            if previous.as_ref() != Some(&owner) {
                lines.push(format!("conflicts with {owner}:"));
                previous = Some(owner);
            }
            lines.push(format!("- {}", c.field));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    }
}

/// The parts of a write that decide which paths count.
struct Ctx<'k> {
    keys: &'k dyn ListKeys,
    ignored: &'k [Vec<String>],
}

impl Ctx<'_> {
    fn list_keys(&self, names: &[&str]) -> Option<Vec<String>> {
        self.keys.keys(names)
    }

    fn is_ignored(&self, names: &[&str]) -> bool {
        self.ignored.iter().any(|prefix| {
            !prefix.is_empty()
                && names.len() >= prefix.len()
                && prefix.iter().zip(names).all(|(p, n)| p == n)
        })
    }

    /// Paths nobody owns: type and identity of the object, server metadata.
    fn is_unowned(&self, names: &[&str]) -> bool {
        match names {
            ["apiVersion" | "kind"] => true,
            ["metadata", field] => {
                SERVER_METADATA.contains(field) || IDENTITY_METADATA.contains(field)
            }
            _ => self.is_ignored(names),
        }
    }

    /// Paths an applied configuration may not write.
    fn is_unmerged(&self, names: &[&str]) -> bool {
        match names {
            ["metadata", field] => SERVER_METADATA.contains(field),
            _ => self.is_ignored(names),
        }
    }
}

fn is_map_field(names: &[&str], map: &Map<String, Value>) -> bool {
    match names.last() {
        // Service and ReplicationController selectors are maps; workload
        // selectors are LabelSelector structs.
        Some(&"selector") => {
            !map.contains_key("matchLabels")
                && !map.contains_key("matchExpressions")
                && map.values().all(Value::is_string)
        }
        Some(last) => MAP_FIELDS.contains(last),
        None => false,
    }
}

/// Walks values, building field sets and differences.
struct Walker<'a, 'c> {
    ctx: &'c Ctx<'c>,
    names: Vec<&'a str>,
    path: Vec<PathElement>,
    removed: Vec<Vec<PathElement>>,
}

impl<'a, 'c> Walker<'a, 'c> {
    fn new(ctx: &'c Ctx<'c>) -> Walker<'a, 'c> {
        Walker {
            ctx,
            names: Vec::new(),
            path: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The set an applied configuration claims: leaves, atomic lists and
    /// keyed-list items, but not the objects that hold them.
    fn applied_set(&mut self, value: &'a Value, node: &mut FieldSet) -> Result<(), String> {
        match value {
            Value::Object(fields) => {
                for (name, child) in fields {
                    if child.is_null() {
                        continue;
                    }
                    self.names.push(name);
                    if !self.ctx.is_unowned(&self.names) {
                        self.path.push(PathElement::Field(name.clone()));
                        let sub = node.child_mut(PathElement::Field(name.clone()));
                        self.applied_set(child, sub)?;
                        self.path.pop();
                    }
                    self.names.pop();
                }
            }
            Value::Array(items) => match self.ctx.list_keys(&self.names) {
                None => node.member = true,
                Some(keys) => {
                    for (i, item) in items.iter().enumerate() {
                        let Some(pe) = item_element(item, &keys) else {
                            return Err(format!(
                                "{}: item {i} has none of the list keys [{}]",
                                display_path(&self.path, self.ctx.keys),
                                keys.join(",")
                            ));
                        };
                        if node.children.get(&pe).is_some_and(|c| c.member) {
                            return Err(format!(
                                "{}: duplicate entries for key {}",
                                display_path(&self.path, self.ctx.keys),
                                display_path(std::slice::from_ref(&pe), &NamedKeys(keys)),
                            ));
                        }
                        let sub = node.child_mut(pe.clone());
                        sub.member = true;
                        if let (false, Value::Object(fields)) = (keys.is_empty(), item) {
                            self.path.push(pe);
                            for (name, child) in fields {
                                if child.is_null() {
                                    continue;
                                }
                                self.names.push(name);
                                self.path.push(PathElement::Field(name.clone()));
                                let field = sub.child_mut(PathElement::Field(name.clone()));
                                self.applied_set(child, field)?;
                                self.path.pop();
                                self.names.pop();
                            }
                            self.path.pop();
                        }
                    }
                }
            },
            _ => node.member = true,
        }
        Ok(())
    }

    /// Records what changed from `old` to `new` under `node` (the changed
    /// set at the current path); removed paths go to `self.removed`.
    fn compare(&mut self, old: &'a Value, new: &'a Value, node: &mut FieldSet) {
        match (old, new) {
            (Value::Object(old_fields), Value::Object(new_fields)) => {
                for (name, new_value) in new_fields {
                    let old_value = old_fields.get(name);
                    // Most of an object is untouched by a write; equal
                    // subtrees cost a comparison and no allocation.
                    if old_value == Some(new_value) {
                        continue;
                    }
                    self.names.push(name);
                    if !self.ctx.is_unowned(&self.names) {
                        let pe = PathElement::Field(name.clone());
                        self.path.push(pe.clone());
                        let sub = node.child_mut(pe);
                        match old_value {
                            Some(old_value) => self.compare(old_value, new_value, sub),
                            None => self.added(new_value, sub),
                        }
                        self.path.pop();
                    }
                    self.names.pop();
                }
                for name in old_fields.keys() {
                    if new_fields.contains_key(name) {
                        continue;
                    }
                    self.names.push(name);
                    if !self.ctx.is_unowned(&self.names) {
                        let mut gone = self.path.clone();
                        gone.push(PathElement::Field(name.clone()));
                        self.removed.push(gone);
                    }
                    self.names.pop();
                }
            }
            (Value::Array(old_items), Value::Array(new_items)) => {
                match self.ctx.list_keys(&self.names) {
                    None => {
                        if old_items != new_items {
                            node.member = true;
                        }
                    }
                    Some(keys) => self.compare_items(old_items, new_items, &keys, node),
                }
            }
            _ => {
                if old != new {
                    node.member = true;
                    if old.is_object() || old.is_array() {
                        // Whatever was owned under the old shape is gone.
                        self.removed.push(self.path.clone());
                    }
                    if new.is_object() || new.is_array() {
                        self.added(new, node);
                    }
                }
            }
        }
    }

    fn compare_items(
        &mut self,
        old_items: &'a [Value],
        new_items: &'a [Value],
        keys: &[String],
        node: &mut FieldSet,
    ) {
        let mut old_by_pe: HashMap<PathElement, &'a Value> =
            HashMap::with_capacity(old_items.len());
        let mut old_order: Vec<PathElement> = Vec::with_capacity(old_items.len());
        for (i, item) in old_items.iter().enumerate() {
            let pe = item_element_or_index(item, keys, i);
            if !old_by_pe.contains_key(&pe) {
                old_by_pe.insert(pe.clone(), item);
                old_order.push(pe);
            }
        }
        let mut seen: HashSet<PathElement> = HashSet::with_capacity(new_items.len());
        for (i, item) in new_items.iter().enumerate() {
            let pe = item_element_or_index(item, keys, i);
            if !seen.insert(pe.clone()) {
                continue;
            }
            let old_item = old_by_pe.get(&pe).copied();
            if old_item == Some(item) {
                continue;
            }
            self.path.push(pe.clone());
            let sub = node.child_mut(pe);
            match old_item {
                Some(old_item) => self.compare(old_item, item, sub),
                None => {
                    sub.member = true;
                    self.added_item_fields(item, keys, sub);
                }
            }
            self.path.pop();
        }
        for pe in old_order {
            if !seen.contains(&pe) {
                let mut gone = self.path.clone();
                gone.push(pe);
                self.removed.push(gone);
            }
        }
    }

    /// Marks a value that did not exist before as changed, the way the
    /// server attributes a newly created subtree to an updater.
    fn added(&mut self, value: &'a Value, node: &mut FieldSet) {
        match value {
            Value::Object(fields) => {
                if fields.is_empty() || is_map_field(&self.names, fields) {
                    node.member = true;
                }
                for (name, child) in fields {
                    self.names.push(name);
                    if !self.ctx.is_unowned(&self.names) {
                        let sub = node.child_mut(PathElement::Field(name.clone()));
                        self.added(child, sub);
                    }
                    self.names.pop();
                }
            }
            Value::Array(items) => match self.ctx.list_keys(&self.names) {
                Some(keys) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        let sub = node.child_mut(item_element_or_index(item, &keys, i));
                        sub.member = true;
                        self.added_item_fields(item, &keys, sub);
                    }
                }
                _ => node.member = true,
            },
            _ => node.member = true,
        }
    }

    fn added_item_fields(&mut self, item: &'a Value, keys: &[String], node: &mut FieldSet) {
        if keys.is_empty() {
            return;
        }
        if let Value::Object(fields) = item {
            for (name, child) in fields {
                self.names.push(name);
                let sub = node.child_mut(PathElement::Field(name.clone()));
                self.added(child, sub);
                self.names.pop();
            }
        }
    }
}

/// Declared keys for one list, to print a duplicate key in declared order.
struct NamedKeys(Vec<String>);

impl ListKeys for NamedKeys {
    fn keys(&self, _path: &[&str]) -> Option<Vec<String>> {
        Some(self.0.clone())
    }
}

/// What a write changed, in ownership terms.
struct Diff {
    /// Paths modified or added.
    changed: FieldSet,
    /// Paths (with everything under them) that no longer exist.
    removed: Vec<Vec<PathElement>>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

fn diff<'a>(old: &'a Value, new: &'a Value, ctx: &Ctx<'_>) -> Diff {
    let mut walker = Walker::new(ctx);
    let mut changed = FieldSet::default();
    walker.compare(old, new, &mut changed);
    changed.prune();
    Diff {
        changed,
        removed: walker.removed,
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    /// Empty for the main resource.
    subresource: String,
    time: Option<String>,
    /// Where the entry sits in [`Record::original`], while that stored form
    /// is still accurate.
    stored: Option<usize>,
    /// The parsed field set, once something needed it.
    set: Option<FieldSet>,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, api_version: &str, subresource: &str) -> bool {
        // Appliers keep one entry across API versions; updaters get one
        // per version.
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == APPLY || self.api_version == api_version)
    }

    fn encode(&self, set: &FieldSet) -> Value {
        let mut map = Map::new();
        map.insert("manager".to_owned(), Value::String(self.manager.clone()));
        map.insert(
            "operation".to_owned(),
            Value::String(self.operation.clone()),
        );
        map.insert(
            "apiVersion".to_owned(),
            Value::String(self.api_version.clone()),
        );
        if let Some(time) = &self.time {
            map.insert("time".to_owned(), Value::String(time.clone()));
        }
        map.insert(
            "fieldsType".to_owned(),
            Value::String("FieldsV1".to_owned()),
        );
        map.insert("fieldsV1".to_owned(), set.to_fields_v1());
        if !self.subresource.is_empty() {
            map.insert(
                "subresource".to_owned(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(map)
    }
}

/// The `metadata.managedFields` of one object, read lazily: an entry is
/// parsed only when a write has to look inside it, and re-encoded only when
/// the write changed it. Most writes touch one or two entries of many, and
/// parsing and encoding sets is most of the cost of a write.
struct Record {
    /// The list as stored, untouched until [`Record::into_list`].
    original: Option<Value>,
    entries: Vec<Entry>,
}

impl Record {
    /// Reads a stored list. Entries that are not `FieldsV1` are dropped and
    /// duplicates folded together rather than failing the write. Unless the
    /// list is `trusted` (written by this module, so canonical), every entry
    /// is parsed and re-encoded.
    fn read(original: Option<Value>, trusted: bool) -> Record {
        let mut record = Record {
            original,
            entries: Vec::new(),
        };
        let Some(Value::Array(raw)) = &record.original else {
            return record;
        };
        let text = |v: &Map<String, Value>, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        for (index, item) in raw.iter().enumerate() {
            let Value::Object(fields) = item else {
                continue;
            };
            if fields.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
                continue;
            }
            let entry = Entry {
                manager: text(fields, "manager"),
                operation: text(fields, "operation"),
                api_version: text(fields, "apiVersion"),
                subresource: text(fields, "subresource"),
                time: fields
                    .get("time")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                stored: Some(index),
                set: None,
            };
            let duplicate = record.entries.iter().position(|e| {
                e.is(
                    &entry.manager,
                    &entry.operation,
                    &entry.api_version,
                    &entry.subresource,
                )
            });
            match duplicate {
                Some(first) => {
                    let theirs = fields
                        .get("fieldsV1")
                        .map(FieldSet::from_fields_v1)
                        .unwrap_or_default();
                    let existing = &mut record.entries[first];
                    let mut set = match existing.set.take() {
                        Some(set) => set,
                        None => parse_stored(raw, existing.stored),
                    };
                    set.union_with(&theirs);
                    existing.set = Some(set);
                    existing.stored = None;
                    if entry.time > existing.time {
                        existing.time = entry.time;
                    }
                }
                None => {
                    let mut entry = entry;
                    if !trusted {
                        entry.set = Some(parse_stored(raw, Some(index)));
                        entry.stored = None;
                    }
                    record.entries.push(entry);
                }
            }
        }
        record
    }

    fn stored_fields(&self, i: usize) -> Option<&Value> {
        let index = self.entries.get(i)?.stored?;
        self.original.as_ref()?.get(index)?.get("fieldsV1")
    }

    fn ensure_parsed(&mut self, i: usize) {
        let Some(entry) = self.entries.get(i) else {
            return;
        };
        if entry.set.is_some() {
            return;
        }
        let set = self
            .stored_fields(i)
            .map(FieldSet::from_fields_v1)
            .unwrap_or_default();
        self.entries[i].set = Some(set);
    }

    fn set(&mut self, i: usize) -> &FieldSet {
        self.ensure_parsed(i);
        self.entries[i].set.get_or_insert_default()
    }

    /// The set, for changing: the stored form no longer describes it.
    fn set_mut(&mut self, i: usize) -> &mut FieldSet {
        self.ensure_parsed(i);
        let entry = &mut self.entries[i];
        entry.stored = None;
        entry.set.get_or_insert_default()
    }

    fn touches(&self, i: usize, changed: &FieldSet) -> bool {
        match (&self.entries[i].set, self.stored_fields(i)) {
            (Some(set), _) => set.intersects(changed),
            (None, Some(raw)) => raw_intersects(raw, changed),
            (None, None) => false,
        }
    }

    fn holds(&self, i: usize, path: &[PathElement]) -> bool {
        match (&self.entries[i].set, self.stored_fields(i)) {
            (Some(set), _) => set.holds(path),
            (None, Some(raw)) => raw_holds(raw, path),
            (None, None) => false,
        }
    }

    fn find_or_add(
        &mut self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> usize {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.is(manager, operation, api_version, subresource))
        {
            return i;
        }
        self.entries.push(Entry {
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            api_version: api_version.to_owned(),
            subresource: subresource.to_owned(),
            time: None,
            stored: None,
            set: Some(FieldSet::default()),
        });
        self.entries.len() - 1
    }

    /// The entries to store, in the server's order (operation, time,
    /// manager, API version, subresource), without empty ones.
    fn into_list(mut self) -> Vec<Value> {
        let mut stored = match self.original.take() {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        self.entries.sort_by(|a, b| {
            (
                &a.operation,
                &a.time,
                &a.manager,
                &a.api_version,
                &a.subresource,
            )
                .cmp(&(
                    &b.operation,
                    &b.time,
                    &b.manager,
                    &b.api_version,
                    &b.subresource,
                ))
        });
        let mut out = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match (entry.stored, &entry.set) {
                (Some(index), _) => {
                    if let Some(item) = stored.get_mut(index) {
                        let empty = item
                            .get("fieldsV1")
                            .is_none_or(|f| f.as_object().is_none_or(Map::is_empty));
                        if !empty {
                            out.push(std::mem::take(item));
                        }
                    }
                }
                (None, Some(set)) if !set.is_empty() => out.push(entry.encode(set)),
                (None, _) => {}
            }
        }
        out
    }
}

fn parse_stored(raw: &[Value], index: Option<usize>) -> FieldSet {
    index
        .and_then(|i| raw.get(i))
        .and_then(|item| item.get("fieldsV1"))
        .map(FieldSet::from_fields_v1)
        .unwrap_or_default()
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    match obj.get_mut("metadata") {
        Some(Value::Object(meta)) => meta.remove("managedFields"),
        _ => None,
    }
}

/// Stores a `managedFields` list; an empty one removes the field.
fn put_managed_fields(obj: &mut Value, list: Value) {
    let Value::Object(root) = obj else {
        return;
    };
    if list.as_array().is_some_and(Vec::is_empty) {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".to_owned(), list);
    }
}

fn api_version_of<'v>(primary: &'v Value, fallback: &'v Value) -> &'v str {
    primary
        .get("apiVersion")
        .or_else(|| fallback.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Equality of two objects, `metadata.managedFields` aside.
fn same_ignoring_managed_fields(a: &Value, b: &Value) -> bool {
    fn same_map_except(a: &Map<String, Value>, b: &Map<String, Value>, skip: &str) -> bool {
        a.iter()
            .filter(|(k, _)| *k != skip)
            .all(|(k, v)| b.get(k) == Some(v))
            && b.keys().filter(|k| *k != skip).all(|k| a.contains_key(k))
    }
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            same_map_except(a, b, "metadata")
                && match (a.get("metadata"), b.get("metadata")) {
                    (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
                        same_map_except(ma, mb, "managedFields")
                    }
                    (ma, mb) => ma == mb,
                }
        }
        _ => a == b,
    }
}

/// Merges an applied configuration into `live`: objects merge, keyed lists
/// merge by key, everything else is replaced. Nulls in the configuration
/// mean "not specified".
fn merge_applied<'a>(
    live: &mut Value,
    applied: &'a Value,
    names: &mut Vec<&'a str>,
    ctx: &Ctx<'_>,
) {
    match applied {
        Value::Object(fields) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Value::Object(live_fields) = live else {
                return;
            };
            for (name, value) in fields {
                if value.is_null() {
                    continue;
                }
                names.push(name);
                if !ctx.is_unmerged(names) {
                    match live_fields.get_mut(name) {
                        Some(slot) => merge_applied(slot, value, names, ctx),
                        None => {
                            let mut fresh = Value::Null;
                            merge_applied(&mut fresh, value, names, ctx);
                            live_fields.insert(name.clone(), fresh);
                        }
                    }
                }
                names.pop();
            }
        }
        Value::Array(items) => match ctx.list_keys(names) {
            Some(keys) => {
                let old = match live {
                    Value::Array(old) => std::mem::take(old),
                    _ => Vec::new(),
                };
                *live = Value::Array(merge_items(old, items, &keys, names, ctx));
            }
            None => *live = applied.clone(),
        },
        _ => *live = applied.clone(),
    }
}

/// Merges keyed-list items. Applied items come out in applied order; live
/// items the configuration does not mention stay where they were relative
/// to the items around them.
fn merge_items<'a>(
    live: Vec<Value>,
    applied: &'a [Value],
    keys: &[String],
    names: &mut Vec<&'a str>,
    ctx: &Ctx<'_>,
) -> Vec<Value> {
    let live_pes: Vec<PathElement> = live
        .iter()
        .enumerate()
        .map(|(i, item)| item_element_or_index(item, keys, i))
        .collect();
    let mut first_live: HashMap<&PathElement, usize> = HashMap::with_capacity(live_pes.len());
    for (i, pe) in live_pes.iter().enumerate() {
        first_live.entry(pe).or_insert(i);
    }
    let applied_pes: Vec<Option<PathElement>> = applied
        .iter()
        .map(|item| item_element(item, keys))
        .collect();
    let in_applied: HashSet<&PathElement> = applied_pes.iter().flatten().collect();

    let mut slots: Vec<Option<Value>> = live.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len() + applied.len());
    let (mut l, mut r) = (0, 0);
    loop {
        if let Some(slot) = slots.get_mut(l) {
            let pe = &live_pes[l];
            // Only the first live item with a key pairs with the applied
            // item; duplicates in live data stay where they are.
            let waits_for_applied =
                in_applied.contains(pe) && first_live.get(pe) == Some(&l) && r < applied.len();
            if slot.is_none() {
                l += 1;
                continue;
            }
            if !waits_for_applied {
                out.extend(slot.take());
                l += 1;
                continue;
            }
        } else if r >= applied.len() {
            break;
        }
        // Emit the next applied item, merged into its live counterpart.
        let counterpart = applied_pes[r]
            .as_ref()
            .and_then(|pe| first_live.get(pe))
            .and_then(|&i| slots.get_mut(i))
            .and_then(Option::take);
        let mut item = counterpart.unwrap_or(Value::Null);
        merge_applied(&mut item, &applied[r], names, ctx);
        out.push(item);
        r += 1;
    }
    out
}

fn is_filled(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn is_hollow(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Removes the members of `remove` from `value`. An object or list this
/// emptied goes too, unless some manager still owns something under it or
/// the applied configuration spells it out (so that applying the same
/// configuration again finds nothing to add back).
fn remove_owned<'s>(
    value: &mut Value,
    remove: &'s FieldSet,
    keep: Option<&FieldSet>,
    applied: Option<&Value>,
    names: &mut Vec<&'s str>,
    ctx: &Ctx<'_>,
) {
    for (pe, sub) in &remove.children {
        let keep_sub = keep.and_then(|k| k.children.get(pe));
        if let PathElement::Field(name) = pe {
            let Value::Object(fields) = value else {
                continue;
            };
            if sub.member {
                fields.remove(name);
                continue;
            }
            let Some(child) = fields.get_mut(name) else {
                continue;
            };
            let applied_sub = applied.and_then(|a| a.get(name)).filter(|v| !v.is_null());
            let was_filled = is_filled(child);
            names.push(name);
            remove_owned(child, sub, keep_sub, applied_sub, names, ctx);
            names.pop();
            if was_filled
                && is_hollow(child)
                && applied_sub.is_none()
                && keep_sub.is_none_or(FieldSet::is_empty)
            {
                fields.remove(name);
            }
            continue;
        }
        let Value::Array(items) = value else {
            continue;
        };
        let keys = ctx.list_keys(names).unwrap_or_default();
        let Some(at) = items
            .iter()
            .enumerate()
            .position(|(i, item)| item_element_or_index(item, &keys, i) == *pe)
        else {
            continue;
        };
        if sub.member {
            items.remove(at);
        } else if let Some(item) = items.get_mut(at) {
            let applied_item = match applied {
                Some(Value::Array(applied_items)) => applied_items
                    .iter()
                    .find(|a| item_element(a, &keys).as_ref() == Some(pe)),
                _ => None,
            };
            remove_owned(item, sub, keep_sub, applied_item, names, ctx);
        }
    }
}

pub(crate) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
    keys: &dyn ListKeys,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be a json object".to_owned(),
        ));
    }
    let ctx = Ctx {
        keys,
        ignored: &opts.ignored_fields,
    };
    let mut claimed = FieldSet::default();
    Walker::new(&ctx)
        .applied_set(applied, &mut claimed)
        .map_err(ApplyError::Invalid)?;
    claimed.prune();

    let empty = Value::Object(Map::new());
    let base = live.unwrap_or(&empty);
    let mut merged = base.clone();
    let mut record = Record::read(take_managed_fields(&mut merged), true);
    merge_applied(&mut merged, applied, &mut Vec::new(), &ctx);

    let subresource = opts.subresource.as_deref().unwrap_or_default();
    let api_version = api_version_of(applied, base);
    let me = record.find_or_add(&opts.manager, APPLY, api_version, subresource);
    let last = std::mem::replace(record.set_mut(me), claimed);
    let mut dirty = last != *record.set(me) || record.entries[me].api_version != api_version;
    record.entries[me].api_version = api_version.to_owned();

    // Fields the applier let go of, that nobody else holds, leave the object.
    let mut released = last;
    released.subtract(record.set(me));
    if !released.is_empty() {
        let mut owned = FieldSet::default();
        for i in 0..record.entries.len() {
            owned.union_with(record.set(i));
        }
        released.subtract(&owned);
        if !released.is_empty() {
            remove_owned(
                &mut merged,
                &released,
                Some(&owned),
                Some(applied),
                &mut Vec::new(),
                &ctx,
            );
        }
    }

    let changes = diff(base, &merged, &ctx);
    let mut conflicts = Vec::new();
    let mut taken: Vec<Option<FieldSet>> = vec![None; record.entries.len()];
    for (i, slot) in taken.iter_mut().enumerate() {
        if i == me || !record.touches(i, &changes.changed) {
            continue;
        }
        let clash = record.set(i).intersection(&changes.changed);
        let entry = &record.entries[i];
        for path in clash.members() {
            conflicts.push(ConflictDetail {
                field: display_path(&path, keys),
                manager: entry.manager.clone(),
                operation: entry.operation.clone(),
                api_version: entry.api_version.clone(),
                subresource: Some(entry.subresource.clone()).filter(|s| !s.is_empty()),
                time: entry.time.clone(),
            });
        }
        *slot = Some(clash);
    }
    if !conflicts.is_empty() && !opts.force {
        conflicts.sort_by(|a, b| {
            (&a.manager, &a.operation, &a.api_version, &a.subresource).cmp(&(
                &b.manager,
                &b.operation,
                &b.api_version,
                &b.subresource,
            ))
        });
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (i, clash) in taken.into_iter().enumerate() {
        if i == me {
            continue;
        }
        if let Some(clash) = clash {
            record.set_mut(i).subtract(&clash);
            dirty = true;
        }
        for path in &changes.removed {
            if record.holds(i, path) {
                record.set_mut(i).remove_subtree(path);
                dirty = true;
            }
        }
    }

    if live.is_some() && !dirty && same_ignoring_managed_fields(base, &merged) {
        // A no-op apply leaves the object, timestamps included, as it was.
        if let Some(original) = record.original {
            put_managed_fields(&mut merged, original);
        }
        return Ok(merged);
    }
    record.entries[me].time = Some(opts.now.clone().unwrap_or_else(now_rfc3339));
    put_managed_fields(&mut merged, Value::Array(record.into_list()));
    Ok(merged)
}

pub(crate) fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    opts: &UpdateOptions,
    keys: &dyn ListKeys,
) {
    let ctx = Ctx {
        keys,
        ignored: &opts.ignored_fields,
    };
    let incoming = take_managed_fields(new);
    let stored = old.and_then(managed_fields);
    // A single empty entry is the documented way to wipe the record; an
    // absent or empty list keeps it; anything else replaces it. Patches
    // carry the stored record through unchanged, which is not a rewrite.
    let (source, trusted, rewritten) = match incoming {
        Some(Value::Array(list))
            if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) =>
        {
            (None, true, true)
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            let list = Value::Array(list);
            let same = Some(&list) == stored;
            (Some(list), same, !same)
        }
        _ => (stored.cloned(), true, false),
    };

    let empty = Value::Object(Map::new());
    let base = old.unwrap_or(&empty);
    let changes = diff(base, new, &ctx);
    if changes.is_empty() && !rewritten {
        if let Some(record) = source {
            put_managed_fields(new, record);
        }
        return;
    }

    let mut record = Record::read(source, trusted);
    let subresource = opts.subresource.as_deref().unwrap_or_default();
    let api_version = api_version_of(new, base).to_owned();
    let me = record.find_or_add(&opts.manager, UPDATE, &api_version, subresource);
    for i in 0..record.entries.len() {
        if i == me {
            let mine = record.set_mut(i);
            for path in &changes.removed {
                mine.remove_subtree(path);
            }
            mine.union_with(&changes.changed);
            continue;
        }
        if record.touches(i, &changes.changed) {
            record.set_mut(i).subtract(&changes.changed);
        }
        for path in &changes.removed {
            if record.holds(i, path) {
                record.set_mut(i).remove_subtree(path);
            }
        }
    }
    if !changes.is_empty() {
        record.entries[me].time = Some(opts.now.clone().unwrap_or_else(now_rfc3339));
    }
    put_managed_fields(new, Value::Array(record.into_list()));
}

pub(crate) fn now_rfc3339() -> String {
    // A clock before 1970 is not worth failing a write over.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs)
}

/// `2024-05-01T10:00:00Z`: whole seconds in UTC, as the server writes
/// `managedFields` times.
pub(crate) fn format_rfc3339(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Gregorian date of a day count since 1970-01-01. Counting years from
/// 1 March puts each leap day at the end of its year, so a 400-year era of
/// 146097 days splits into years and months with plain division.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::NodeKeys;
    use super::*;

    /// One write in a scenario.
    enum Step {
        /// Apply without force.
        Apply(&'static str, Value),
        /// Apply with force.
        Force(&'static str, Value),
        /// A non-apply write: the stored object, changed by the function,
        /// recorded for the manager. Like a patch, it keeps the stored
        /// `managedFields` in the body.
        Update(&'static str, fn(&mut Value)),
    }

    struct Scenario {
        desc: &'static str,
        steps: Vec<Step>,
        /// The final object without `metadata.managedFields` (when the last
        /// step succeeds).
        object: Option<Value>,
        /// `(manager, operation, fieldsV1)` of every entry, in stored order.
        fields: Vec<(&'static str, &'static str, Value)>,
        /// `manager field` of each conflict of the last step, if it fails.
        conflicts: Vec<&'static str>,
    }

    fn node(metadata: Value, spec: Value) -> Value {
        let mut meta = json!({"name": "n1"});
        json_merge(&mut meta, metadata);
        json!({"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec})
    }

    fn json_merge(target: &mut Value, extra: Value) {
        if let (Value::Object(t), Value::Object(e)) = (target, extra) {
            t.extend(e);
        }
    }

    fn strip_managed_fields(obj: &Value) -> Value {
        let mut out = obj.clone();
        if let Some(Value::Object(meta)) = out.get_mut("metadata") {
            meta.remove("managedFields");
        }
        out
    }

    fn entries_of(obj: &Value) -> Vec<(String, String, Value)> {
        let Some(Value::Array(list)) = managed_fields(obj) else {
            return Vec::new();
        };
        list.iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or_default().to_owned(),
                    e["operation"].as_str().unwrap_or_default().to_owned(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    /// Runs the steps; returns the last object, or the last step's error.
    fn run(steps: &[Step]) -> Result<Value, ApplyError> {
        let mut current: Option<Value> = None;
        for (i, step) in steps.iter().enumerate() {
            let now = format_rfc3339(1_704_067_200 + i as u64);
            let next = match step {
                Step::Apply(manager, config) | Step::Force(manager, config) => {
                    let opts = ApplyOptions {
                        force: matches!(step, Step::Force(..)),
                        now: Some(now),
                        ..ApplyOptions::new(*manager)
                    };
                    server_side_apply(current.as_ref(), config, &opts, &NodeKeys)
                }
                Step::Update(manager, change) => {
                    let mut new = current.clone().unwrap_or_else(|| json!({}));
                    change(&mut new);
                    let opts = UpdateOptions {
                        now: Some(now),
                        ..UpdateOptions::new(*manager)
                    };
                    track_update(current.as_ref(), &mut new, &opts, &NodeKeys);
                    Ok(new)
                }
            };
            match next {
                Ok(obj) => current = Some(obj),
                Err(e) if i + 1 == steps.len() => return Err(e),
                Err(e) => panic!("step {i} failed: {e}"),
            }
        }
        Ok(current.unwrap_or_default())
    }

    fn taint_key(key: &str, effect: &str) -> String {
        format!("k:{{\"effect\":\"{effect}\",\"key\":\"{key}\"}}")
    }

    fn scenarios() -> Vec<Scenario> {
        let x = taint_key("x", "NoSchedule");
        let y = taint_key("y", "NoExecute");
        vec![
            Scenario {
                desc: "create by apply owns exactly what was sent",
                steps: vec![Step::Apply(
                    "plumbline",
                    node(
                        json!({"labels": {"foo": "a"}, "resourceVersion": "7", "uid": "u"}),
                        json!({"taints": [{"key": "x", "effect": "NoSchedule", "value": "v"}]}),
                    ),
                )],
                object: Some(node(
                    json!({"labels": {"foo": "a"}}),
                    json!({"taints": [{"key": "x", "effect": "NoSchedule", "value": "v"}]}),
                )),
                fields: vec![(
                    "plumbline",
                    "Apply",
                    json!({
                        "f:metadata": {"f:labels": {"f:foo": {}}},
                        "f:spec": {"f:taints": {x.clone(): {".": {}, "f:effect": {}, "f:key": {}, "f:value": {}}}}
                    }),
                )],
                conflicts: vec![],
            },
            Scenario {
                desc: "dropping a field removes it",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(json!({"labels": {"foo": "1", "bar": "2"}}), json!({})),
                    ),
                    Step::Apply("a", node(json!({"labels": {"foo": "1"}}), json!({}))),
                ],
                object: Some(node(json!({"labels": {"foo": "1"}}), json!({}))),
                fields: vec![(
                    "a",
                    "Apply",
                    json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
                )],
                conflicts: vec![],
            },
            Scenario {
                desc: "dropping the last label removes the emptied map and the entry",
                steps: vec![
                    Step::Apply("a", node(json!({"labels": {"foo": "1"}}), json!({}))),
                    Step::Apply("a", node(json!({}), json!({}))),
                ],
                object: Some(node(json!({}), json!({}))),
                fields: vec![],
                conflicts: vec![],
            },
            Scenario {
                desc: "two appliers share a field with the same value; it survives one dropping it",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(json!({"labels": {"foo": "1", "mine": "a"}}), json!({})),
                    ),
                    Step::Apply("b", node(json!({"labels": {"foo": "1"}}), json!({}))),
                    Step::Apply("a", node(json!({"labels": {"mine": "a"}}), json!({}))),
                ],
                object: Some(node(
                    json!({"labels": {"foo": "1", "mine": "a"}}),
                    json!({}),
                )),
                fields: vec![
                    (
                        "b",
                        "Apply",
                        json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
                    ),
                    (
                        "a",
                        "Apply",
                        json!({"f:metadata": {"f:labels": {"f:mine": {}}}}),
                    ),
                ],
                conflicts: vec![],
            },
            Scenario {
                desc: "conflicts without force list every contested field",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(
                            json!({"labels": {"foo": "1"}}),
                            json!({"unschedulable": true, "taints": [{"key": "x", "effect": "NoSchedule", "value": "v"}]}),
                        ),
                    ),
                    Step::Apply(
                        "b",
                        node(
                            json!({"labels": {"foo": "2"}}),
                            json!({"unschedulable": false, "taints": [{"key": "x", "effect": "NoSchedule", "value": "w"}]}),
                        ),
                    ),
                ],
                object: None,
                fields: vec![],
                conflicts: vec![
                    "a .metadata.labels.foo",
                    "a .spec.taints[key=\"x\",effect=\"NoSchedule\"].value",
                    "a .spec.unschedulable",
                ],
            },
            Scenario {
                desc: "force moves contested fields to the applier",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(json!({"labels": {"foo": "1", "keep": "k"}}), json!({})),
                    ),
                    Step::Force("b", node(json!({"labels": {"foo": "2"}}), json!({}))),
                ],
                object: Some(node(
                    json!({"labels": {"foo": "2", "keep": "k"}}),
                    json!({}),
                )),
                fields: vec![
                    (
                        "a",
                        "Apply",
                        json!({"f:metadata": {"f:labels": {"f:keep": {}}}}),
                    ),
                    (
                        "b",
                        "Apply",
                        json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
                    ),
                ],
                conflicts: vec![],
            },
            Scenario {
                desc: "an update steals the field; re-applying the old value conflicts",
                steps: vec![
                    Step::Apply("a", node(json!({"labels": {"foo": "1"}}), json!({}))),
                    Step::Update("kubectl-edit", |obj| {
                        obj["metadata"]["labels"]["foo"] = json!("2")
                    }),
                    Step::Apply("a", node(json!({"labels": {"foo": "1"}}), json!({}))),
                ],
                object: None,
                fields: vec![],
                conflicts: vec!["kubectl-edit .metadata.labels.foo"],
            },
            Scenario {
                desc: "after an update, the applier drops the stolen field and it stays",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(json!({"labels": {"foo": "1", "bar": "1"}}), json!({})),
                    ),
                    Step::Update("kubectl-edit", |obj| {
                        obj["metadata"]["labels"]["foo"] = json!("2")
                    }),
                    Step::Apply("a", node(json!({}), json!({}))),
                ],
                object: Some(node(json!({"labels": {"foo": "2"}}), json!({}))),
                fields: vec![(
                    "kubectl-edit",
                    "Update",
                    json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
                )],
                conflicts: vec![],
            },
            Scenario {
                desc: "keyed list items are owned one by one",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(
                            json!({}),
                            json!({"taints": [{"key": "x", "effect": "NoSchedule"}]}),
                        ),
                    ),
                    Step::Apply(
                        "b",
                        node(
                            json!({}),
                            json!({"taints": [{"key": "y", "effect": "NoExecute"}]}),
                        ),
                    ),
                ],
                object: Some(node(
                    json!({}),
                    json!({"taints": [{"key": "x", "effect": "NoSchedule"}, {"key": "y", "effect": "NoExecute"}]}),
                )),
                fields: vec![
                    (
                        "a",
                        "Apply",
                        json!({"f:spec": {"f:taints": {x.clone(): {".": {}, "f:effect": {}, "f:key": {}}}}}),
                    ),
                    (
                        "b",
                        "Apply",
                        json!({"f:spec": {"f:taints": {y.clone(): {".": {}, "f:effect": {}, "f:key": {}}}}}),
                    ),
                ],
                conflicts: vec![],
            },
            Scenario {
                desc: "dropping one's own list item leaves the other manager's",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(
                            json!({}),
                            json!({"taints": [{"key": "x", "effect": "NoSchedule"}]}),
                        ),
                    ),
                    Step::Apply(
                        "b",
                        node(
                            json!({}),
                            json!({"taints": [{"key": "y", "effect": "NoExecute"}]}),
                        ),
                    ),
                    Step::Apply("a", node(json!({}), json!({}))),
                ],
                object: Some(node(
                    json!({}),
                    json!({"taints": [{"key": "y", "effect": "NoExecute"}]}),
                )),
                fields: vec![(
                    "b",
                    "Apply",
                    json!({"f:spec": {"f:taints": {y.clone(): {".": {}, "f:effect": {}, "f:key": {}}}}}),
                )],
                conflicts: vec![],
            },
            Scenario {
                desc: "atomic lists are owned and replaced whole; set lists by value",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(
                            json!({"finalizers": ["a.io/x"]}),
                            json!({"podCIDRs": ["10.0.0.0/24"]}),
                        ),
                    ),
                    Step::Apply("b", node(json!({"finalizers": ["b.io/y"]}), json!({}))),
                ],
                object: Some(node(
                    json!({"finalizers": ["a.io/x", "b.io/y"]}),
                    json!({"podCIDRs": ["10.0.0.0/24"]}),
                )),
                fields: vec![
                    (
                        "a",
                        "Apply",
                        json!({"f:metadata": {"f:finalizers": {"v:\"a.io/x\"": {}}}, "f:spec": {"f:podCIDRs": {}}}),
                    ),
                    (
                        "b",
                        "Apply",
                        json!({"f:metadata": {"f:finalizers": {"v:\"b.io/y\"": {}}}}),
                    ),
                ],
                conflicts: vec![],
            },
            Scenario {
                desc: "an update that creates an object owns maps with a self marker",
                steps: vec![Step::Update("kubectl-create", |obj| {
                    *obj = node(
                        json!({"labels": {"foo": "1"}}),
                        json!({"taints": [{"key": "x", "effect": "NoSchedule"}], "configSource": {}}),
                    );
                })],
                object: Some(node(
                    json!({"labels": {"foo": "1"}}),
                    json!({"taints": [{"key": "x", "effect": "NoSchedule"}], "configSource": {}}),
                )),
                fields: vec![(
                    "kubectl-create",
                    "Update",
                    json!({
                        "f:metadata": {"f:labels": {".": {}, "f:foo": {}}},
                        "f:spec": {
                            "f:configSource": {},
                            "f:taints": {x.clone(): {".": {}, "f:effect": {}, "f:key": {}}}
                        }
                    }),
                )],
                conflicts: vec![],
            },
            Scenario {
                desc: "an update takes changed fields from an applier and keeps the rest with it",
                steps: vec![
                    Step::Apply(
                        "a",
                        node(json!({"labels": {"foo": "1", "bar": "1"}}), json!({})),
                    ),
                    Step::Update("ctrl", |obj| {
                        obj["metadata"]["labels"]["bar"] = json!("2");
                        obj["spec"]["unschedulable"] = json!(true);
                    }),
                ],
                object: Some(node(
                    json!({"labels": {"foo": "1", "bar": "2"}}),
                    json!({"unschedulable": true}),
                )),
                fields: vec![
                    (
                        "a",
                        "Apply",
                        json!({"f:metadata": {"f:labels": {"f:foo": {}}}}),
                    ),
                    (
                        "ctrl",
                        "Update",
                        json!({"f:metadata": {"f:labels": {"f:bar": {}}}, "f:spec": {"f:unschedulable": {}}}),
                    ),
                ],
                conflicts: vec![],
            },
            Scenario {
                desc: "a removal by update takes the field from its owner",
                steps: vec![
                    Step::Apply("a", node(json!({"labels": {"foo": "1"}}), json!({}))),
                    Step::Update("ctrl", |obj| {
                        if let Some(Value::Object(labels)) = obj["metadata"].get_mut("labels") {
                            labels.remove("foo");
                        }
                    }),
                ],
                object: Some(node(json!({"labels": {}}), json!({}))),
                fields: vec![],
                conflicts: vec![],
            },
        ]
    }

    #[test]
    fn apply_and_update_scenarios() {
        for sc in scenarios() {
            match run(&sc.steps) {
                Ok(obj) => {
                    assert!(
                        sc.conflicts.is_empty(),
                        "{}: expected conflicts, got {obj}",
                        sc.desc
                    );
                    if let Some(want) = &sc.object {
                        assert_eq!(&strip_managed_fields(&obj), want, "{}: object", sc.desc);
                    }
                    let want: Vec<(String, String, Value)> = sc
                        .fields
                        .iter()
                        .map(|(m, op, f)| ((*m).to_owned(), (*op).to_owned(), f.clone()))
                        .collect();
                    assert_eq!(entries_of(&obj), want, "{}: managed fields", sc.desc);
                }
                Err(ApplyError::Conflicts(found)) => {
                    let found: Vec<String> = found
                        .iter()
                        .map(|c| format!("{} {}", c.manager, c.field))
                        .collect();
                    assert_eq!(found, sc.conflicts, "{}: conflicts", sc.desc);
                }
                Err(e) => panic!("{}: unexpected error {e}", sc.desc),
            }
        }
    }

    #[test]
    fn reapplying_unchanged_config_is_a_no_op() {
        let config = node(
            json!({"labels": {"foo": "1"}}),
            json!({"taints": [{"key": "x", "effect": "NoSchedule"}]}),
        );
        let first = ApplyOptions {
            now: Some("2024-01-01T00:00:00Z".into()),
            ..ApplyOptions::new("a")
        };
        let later = ApplyOptions {
            now: Some("2025-01-01T00:00:00Z".into()),
            ..ApplyOptions::new("a")
        };
        let created = match server_side_apply(None, &config, &first, &NodeKeys) {
            Ok(v) => v,
            Err(e) => panic!("create: {e}"),
        };
        let again = match server_side_apply(Some(&created), &config, &later, &NodeKeys) {
            Ok(v) => v,
            Err(e) => panic!("re-apply: {e}"),
        };
        assert_eq!(again, created, "object and timestamps untouched");
    }

    #[test]
    fn managed_fields_entry_shape() {
        let opts = ApplyOptions {
            now: Some("2024-01-01T00:00:00Z".into()),
            subresource: Some("status".into()),
            ..ApplyOptions::new("agent")
        };
        let config = json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "GpuHealthy", "status": "True"}]}
        });
        let got = match server_side_apply(None, &config, &opts, &NodeKeys) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            got["metadata"]["managedFields"],
            json!([{
                "manager": "agent",
                "operation": "Apply",
                "apiVersion": "v1",
                "time": "2024-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"GpuHealthy\"}": {
                    ".": {}, "f:status": {}, "f:type": {}
                }}}},
                "subresource": "status"
            }])
        );
    }

    #[test]
    fn ignored_fields_are_neither_merged_nor_owned() {
        let opts = ApplyOptions {
            ignored_fields: vec![vec!["status".into()]],
            now: Some("2024-01-01T00:00:00Z".into()),
            ..ApplyOptions::new("a")
        };
        let config = json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"unschedulable": true},
            "status": {"phase": "Running"}
        });
        let got = match server_side_apply(None, &config, &opts, &NodeKeys) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(got.get("status"), None, "status not merged");
        assert_eq!(
            got["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:unschedulable": {}}}),
            "status not owned"
        );
    }

    #[test]
    fn conflict_messages_match_the_server() {
        let steps = vec![
            Step::Apply(
                "a",
                node(json!({"labels": {"foo": "1", "bar": "1"}}), json!({})),
            ),
            Step::Update("kubectl-edit", |obj| {
                obj["metadata"]["labels"]["foo"] = json!("2")
            }),
            Step::Apply(
                "b",
                node(json!({"labels": {"foo": "3", "bar": "3"}}), json!({})),
            ),
        ];
        let err = match run(&steps) {
            Ok(v) => panic!("expected conflicts, got {v}"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), "conflict");
        assert_eq!(
            err.status_message(),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .metadata.labels.bar\n\
             conflicts with \"kubectl-edit\" using v1 at 2024-01-01T00:00:01Z:\n- .metadata.labels.foo"
        );
        let ApplyError::Conflicts(list) = &err else {
            panic!("conflicts expected");
        };
        assert_eq!(
            list[1].cause_message(),
            "conflict with \"kubectl-edit\" using v1 at 2024-01-01T00:00:01Z"
        );

        let single = ApplyError::Conflicts(vec![list[0].clone()]);
        assert_eq!(
            single.status_message(),
            "Apply failed with 1 conflict: conflict with \"a\": .metadata.labels.bar"
        );
    }

    #[test]
    fn invalid_configurations() {
        let cases = [
            (
                "not an object",
                json!([1]),
                "invalid applied configuration: the applied configuration must be a json object",
            ),
            (
                "duplicate keyed items",
                node(
                    json!({}),
                    json!({"taints": [{"key": "x", "effect": "NoSchedule"}, {"effect": "NoSchedule", "key": "x", "value": "v"}]}),
                ),
                "invalid applied configuration: .spec.taints: duplicate entries for key [key=\"x\",effect=\"NoSchedule\"]",
            ),
            (
                "keyed item without keys",
                node(json!({}), json!({"taints": [{"value": "v"}]})),
                "invalid applied configuration: .spec.taints: item 0 has none of the list keys [key,effect]",
            ),
        ];
        for (desc, config, want) in cases {
            match server_side_apply(None, &config, &ApplyOptions::new("a"), &NodeKeys) {
                Ok(v) => panic!("{desc}: expected an error, got {v}"),
                Err(e) => {
                    assert_eq!(e.kind(), "invalid", "{desc}");
                    assert_eq!(e.to_string(), want, "{desc}");
                }
            }
        }
    }

    #[test]
    fn update_record_handling() {
        let applied = match run(&[Step::Apply(
            "a",
            node(json!({"labels": {"foo": "1"}}), json!({})),
        )]) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };

        // No change at all: the stored record comes back byte for byte,
        // even when the body carried none.
        let mut same = strip_managed_fields(&applied);
        super::super::track_update(Some(&applied), &mut same, "ctrl", &NodeKeys);
        assert_eq!(same, applied, "no-op update keeps the record");

        // A single empty entry wipes the record; the writer owns only what
        // it changed in the same request.
        let mut wiped = applied.clone();
        wiped["metadata"]["managedFields"] = json!([{}]);
        wiped["spec"]["unschedulable"] = json!(true);
        super::super::track_update(Some(&applied), &mut wiped, "ctrl", &NodeKeys);
        let entries = entries_of(&wiped);
        assert_eq!(
            entries,
            vec![(
                "ctrl".to_owned(),
                "Update".to_owned(),
                json!({"f:spec": {"f:unschedulable": {}}})
            )],
            "reset record"
        );

        // An empty list does not wipe anything.
        let mut kept = applied.clone();
        kept["metadata"]["managedFields"] = json!([]);
        super::super::track_update(Some(&applied), &mut kept, "ctrl", &NodeKeys);
        assert_eq!(kept, applied, "empty list keeps the record");
    }

    #[test]
    fn rfc3339_formatting() {
        let cases = [
            ("epoch", 0, "1970-01-01T00:00:00Z"),
            ("leap day", 951_782_400, "2000-02-29T00:00:00Z"),
            ("last second of 2023", 1_704_067_199, "2023-12-31T23:59:59Z"),
            ("arbitrary instant", 1_700_000_000, "2023-11-14T22:13:20Z"),
            ("far future", 4_102_444_800, "2100-01-01T00:00:00Z"),
        ];
        for (desc, secs, want) in cases {
            assert_eq!(format_rfc3339(secs), want, "{desc}");
        }
        assert_eq!(now_rfc3339().len(), 20, "now is whole seconds in UTC");
    }
}
