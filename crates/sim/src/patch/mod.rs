//! Patch and apply semantics for the emulator: what a real API server does
//! with the body of a PATCH, and how it keeps `metadata.managedFields`.
//!
//! Every function here is pure: it takes the stored object (a JSON value)
//! and the request's patch or configuration and returns the object to
//! store, or why the request fails. Preconditions (`resourceVersion`),
//! admission, validation and storage stay with the caller.
//!
//! - [`json_merge_patch`] (RFC 7386) and [`create_merge_patch`], its inverse;
//! - [`json_patch`] (RFC 6902), with the Kubernetes library's quirks;
//! - [`strategic_merge_patch`], merging lists by the keys [`ListKeys`]
//!   names and honouring kubectl's `$patch`, `$retainKeys`,
//!   `$setElementOrder` and `$deleteFromPrimitiveList` directives;
//! - [`server_side_apply`] and [`track_update`], which keep field ownership
//!   the way the server's field manager does, with `FieldsV1` sets.
//!
//! A typical write: the caller runs the patch function matching the
//! request's content type (or, for apply, [`server_side_apply_with`]),
//! then, for every write that is not an apply, [`track_update`] with the
//! stored and the new object, and stores the result.
//!
//! List keys are looked up by the path of field names from the object
//! root; list items add nothing to the path, so the `env` of every
//! container of a pod template is `["spec", "template", "spec",
//! "containers", "env"]`.

mod apply;
mod fieldset;
mod json_patch;
mod merge;
mod strategic;

#[cfg(test)]
mod proptests;

use serde_json::Value;

pub use self::apply::{ApplyError, ApplyOptions, ConflictDetail, UpdateOptions};

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("invalid patch: {0}")]
    Invalid(String),
    #[error("json patch test failed at {path}")]
    TestFailed { path: String },
}

impl PatchError {
    pub fn kind(&self) -> &'static str {
        match self {
            PatchError::Invalid(_) => "invalid",
            PatchError::TestFailed { .. } => "test_failed",
        }
    }
}

/// Tells the strategic-merge and apply logic which lists are maps keyed by
/// which fields, for a path of field names from the object root
/// (e.g. `["spec", "taints"]` -> `Some(["key", "effect"])`).
///
/// `None` means the list is atomic (replaced as a whole); `Some` of an
/// empty list means a set of primitive values (merged by value, like
/// `metadata.finalizers`). List items add no segment to the path.
pub trait ListKeys: Send + Sync {
    fn keys(&self, path: &[&str]) -> Option<Vec<String>>;
}

/// RFC 7386 JSON merge patch, in place.
pub fn json_merge_patch(target: &mut Value, patch: &Value) {
    merge::json_merge_patch(target, patch);
}

/// The RFC 7386 merge patch that turns `from` into `to`.
///
/// Exact whenever `to` holds no `null` object members, which a merge patch
/// cannot express.
pub fn create_merge_patch(from: &Value, to: &Value) -> Value {
    merge::create_merge_patch(from, to)
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    json_patch::json_patch(target, patch)
}

/// Kubernetes strategic merge patch (for built-in kinds).
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    keys: &dyn ListKeys,
) -> Result<Value, PatchError> {
    strategic::strategic_merge_patch(target, patch, keys)
}

/// A conflict found by server-side apply without `force`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// Field path as the API server prints it, e.g. `.spec.replicas`.
    pub field: String,
    /// The manager that owns it.
    pub manager: String,
}

/// Server-side apply of `applied` (the manager's whole intent) onto `live`
/// (None = create). Returns the new object with `metadata.managedFields`
/// updated, or the conflicts.
///
/// An applied configuration the server would reject outright (not an
/// object, duplicate or keyless items in a keyed list) comes back as a
/// single conflict with an empty `manager` and the reason in `field`;
/// [`server_side_apply_with`] reports it as [`ApplyError::Invalid`] instead.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    keys: &dyn ListKeys,
) -> Result<Value, Vec<ApplyConflict>> {
    let opts = ApplyOptions {
        force,
        ..ApplyOptions::new(manager)
    };
    match server_side_apply_with(live, applied, &opts, keys) {
        Ok(object) => Ok(object),
        Err(ApplyError::Conflicts(conflicts)) => {
            Err(conflicts.iter().map(ConflictDetail::to_conflict).collect())
        }
        Err(invalid @ ApplyError::Invalid(_)) => Err(vec![ApplyConflict {
            field: invalid.to_string(),
            manager: String::new(),
        }]),
    }
}

/// [`server_side_apply`] with every knob: subresource, a fixed time,
/// fields the write may not touch, and conflicts with the detail the
/// server's 409 carries.
///
/// A no-op apply returns `live` unchanged, timestamps included, so the
/// caller can skip the write as the server does.
pub fn server_side_apply_with(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
    keys: &dyn ListKeys,
) -> Result<Value, ApplyError> {
    apply::server_side_apply(live, applied, opts, keys)
}

/// Records in `new.metadata.managedFields` that `manager` (operation
/// `Update`) now owns the fields that changed between `old` and `new`.
///
/// The record comes from `old` unless `new` carries its own: a list with a
/// single empty entry wipes it, any other non-empty list replaces it. When
/// nothing changed, `new` gets `old`'s record back untouched.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, keys: &dyn ListKeys) {
    track_update_with(old, new, &UpdateOptions::new(manager), keys);
}

/// [`track_update`] with subresource, a fixed time and ignored fields.
pub fn track_update_with(
    old: Option<&Value>,
    new: &mut Value,
    opts: &UpdateOptions,
    keys: &dyn ListKeys,
) {
    apply::track_update(old, new, opts, keys);
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::ListKeys;

    /// Merge keys of the built-in types the tests use, as the emulator's
    /// table would list them.
    pub(crate) struct NodeKeys;

    impl ListKeys for NodeKeys {
        fn keys(&self, path: &[&str]) -> Option<Vec<String>> {
            let keys: &[&str] = match path {
                ["spec", "taints"] => &["key", "effect"],
                ["status", "conditions"] => &["type"],
                ["metadata", "finalizers"] => &[],
                ["metadata", "ownerReferences"] => &["uid"],
                [
                    "spec",
                    "template",
                    "spec",
                    "containers" | "initContainers" | "volumes",
                ] => &["name"],
                ["spec", "template", "spec", "containers", "env"] => &["name"],
                ["spec", "template", "spec", "containers", "ports"] => &["containerPort"],
                _ => return None,
            };
            Some(keys.iter().map(|k| (*k).to_owned()).collect())
        }
    }
}
