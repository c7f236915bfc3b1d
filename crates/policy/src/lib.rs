//! Plumbline's decisions: what a node's GPU stack is worth against its
//! policy, and what to do about it.
//!
//! The controller only carries out what this crate decides, so every
//! safety property of Plumbline holds here first, where it can be tested
//! without a cluster: nothing in this crate does I/O, reads a clock or
//! keeps state between calls. The caller gathers the policy, the node's
//! baseline, the pool and the time, and gets back plain values.
//!
//! ```text
//!  GpuFleetPolicy ──► validate_policy ──► (invalid: never acted on; reasons
//!        │                                 go to the policy's Valid condition)
//!        │  select_policy(node labels)       highest priority wins,
//!        ▼                                   a tie is a reported conflict
//!  NodeGpuBaseline.status ─┐
//!  FleetView (the pool) ───┼──► evaluate ──► Verdict ───────────────┐
//!  now, CompatDb ──────────┘    Compliant | Drifting | Unknown      │
//!                               + findings (rule, expected,         │
//!                                 observed, what to do)             ▼
//!  NodeView (the Node as it is) ─────────────────────────► plan(&mut Budget)
//!                                                                   │
//!                                                                   ▼
//!                             NodePlan: minimal diff of plumbline.dev/ labels,
//!                             annotations, drift taint, GpuStackCompliant
//!                             condition and Plumbline's own cordon;
//!                             held_back when the budget, gracePeriod or a
//!                             conflict stops a taint or cordon; dry_run
//!                                                                   │
//!  verdicts + plans ──► summarize ──► GpuFleetPolicyStatus          ▼
//!                                                          controller patches
//! ```
//!
//! Evaluation is total: a value from a node that does not parse, a probe
//! that failed, a driver branch the compat data does not know, all become
//! findings and at worst an `Unknown` verdict, never a panic and never a
//! guess. Old data (a stale heartbeat) never makes a node `Drifting`.
//!
//! Planning is a diff against the node as it is, so applying a plan and
//! planning again gives an empty plan, and steady state writes nothing. It
//! touches only keys Plumbline owns, lifts only cordons Plumbline made, and
//! respects an admin's uncordon. Every new taint or cordon takes a unit of
//! a [`Budget`] counted from the cluster's nodes, not from memory, so a
//! restarted controller cannot exceed `maxUnavailable`; recovery is never
//! held back. These properties are checked with generated fleets in
//! `tests/plan_properties.rs`.
//!
//! `plumbline check --policy` uses the same code on one host through
//! [`parse_policy`], [`evaluate_host`] and [`exit_code`].

mod evaluate;
mod fleet;
mod gpu;
mod host;
mod plan;
mod select;
mod summary;
pub mod text;
mod validate;

pub use evaluate::{EvalInput, evaluate, unmanaged_verdict};
pub use fleet::{FleetView, Reference, uniformity_probe, uniformity_value};
pub use gpu::{GpuIdentity, architecture_label, effective_ceiling, identify_gpus, loaded_driver};
pub use host::{
    DEFAULT_POLICY_NAME, EXIT_COMPLIANT, EXIT_DRIFTING, EXIT_UNKNOWN, EXIT_USAGE, PolicyFileError,
    default_policy, evaluate_host, exit_code, parse_policy,
};
pub use plan::{
    Budget, ConditionChange, ConditionStatus, HeldBack, HoldReason, MAX_CONDITION_MESSAGE,
    NodeCondition, NodePlan, NodeView, OWNED_ANNOTATIONS, PlanEvent, PlanInput, Taint,
    condition_message, drift_taint, fact_labels, plan, release, transition_time,
};
pub use select::{SELECTOR_OPERATORS, Selection, select_policy, selector_errors, selector_matches};
pub use summary::{
    MAX_LISTED_NODES, NodeOutcome, SummaryInput, invalid_status, merge_conditions, summarize,
};
pub use validate::{FieldError, MaxUnavailable, needs_budget, validate_policy};
