//! Bringing the node's `NodeGpuBaseline` in line with the latest snapshot,
//! one request at a time.
//!
//! The publisher remembers what the server holds (the agent-owned part of
//! `status`), learnt from a read at start and from the object every write
//! returns. From that it decides whether anything needs writing at all
//! (the hash changed, or the heartbeat is due) and sends only the
//! difference. Each step is a single request, so cancelling it (shutdown)
//! can never leave a half-written object. A 404 means the baseline is gone
//! (the Node was deleted and recreated, or someone deleted it): create it
//! again. A 409 means what the publisher remembers is stale: read again.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use plumbline_api::{NodeGpuBaseline, NodeGpuBaselineSpec, keys};
use serde_json::Value;

use crate::error::ApiError;
use crate::status::{self, Snapshot};

/// Why a write was made, the `reason` label of `publishes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The baseline was created and its first status written.
    Create,
    /// The observation changed.
    Change,
    /// Nothing changed; the heartbeat was due.
    Heartbeat,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Create => "create",
            Reason::Change => "change",
            Reason::Heartbeat => "heartbeat",
        }
    }
}

/// What the publisher believes the server holds.
#[derive(Debug, Clone, PartialEq)]
enum Server {
    /// Not known: read before writing.
    Unknown,
    /// No baseline: create one.
    Absent,
    /// A baseline whose agent-owned status part is this.
    Present { agent_part: Value },
}

pub(crate) struct Publisher {
    baselines: Api<NodeGpuBaseline>,
    nodes: Api<Node>,
    node_name: String,
    agent_version: String,
    heartbeat_interval: Duration,
    api_timeout: Duration,
    server: Server,
    /// When the next heartbeat is due. Kept here rather than derived from
    /// the stored `lastHeartbeatTime`, which has whole seconds only and
    /// would make heartbeats up to a second early.
    next_heartbeat: Option<Instant>,
}

impl Publisher {
    pub(crate) fn new(
        client: kube::Client,
        node_name: String,
        agent_version: String,
        heartbeat_interval: Duration,
        api_timeout: Duration,
    ) -> Publisher {
        Publisher {
            baselines: Api::all(client.clone()),
            nodes: Api::all(client),
            node_name,
            agent_version,
            heartbeat_interval,
            api_timeout,
            server: Server::Unknown,
            next_heartbeat: None,
        }
    }

    /// How long until the heartbeat is due; zero when the publisher does
    /// not know (it has to read first anyway).
    pub(crate) fn heartbeat_due_in(&self) -> Duration {
        match (&self.server, self.next_heartbeat) {
            (Server::Present { .. }, Some(due)) => due.saturating_duration_since(Instant::now()),
            _ => Duration::ZERO,
        }
    }

    /// Schedules the next heartbeat from the server's `lastHeartbeatTime`
    /// (after a read), or due now if it has none.
    fn schedule_from_server(&mut self) {
        let Server::Present { agent_part } = &self.server else {
            self.next_heartbeat = None;
            return;
        };
        let left = status::heartbeat_of(agent_part).and_then(|last| {
            let elapsed = Timestamp::now().duration_since(last);
            jiff::SignedDuration::try_from(self.heartbeat_interval)
                .ok()?
                .checked_sub(elapsed)
                .and_then(|d| Duration::try_from(d).ok())
        });
        self.next_heartbeat = Some(Instant::now() + left.unwrap_or(Duration::ZERO));
    }

    /// One step towards publishing `snapshot`: at most a read and a write
    /// (create adds one read of the Node and the create itself). Returns the
    /// write made, if any; `Ok(None)` means the server is up to date.
    pub(crate) async fn sync(&mut self, snapshot: &Snapshot) -> Result<Option<Reason>, ApiError> {
        let mut created = false;
        if self.server == Server::Unknown {
            self.read().await?;
        }
        if self.server == Server::Absent {
            self.create().await?;
            created = true;
        }
        let Server::Present { agent_part } = &self.server else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let changed = status::hash_of(agent_part) != Some(snapshot.hash.as_str())
            || agent_part.get("agentVersion").and_then(Value::as_str)
                != Some(self.agent_version.as_str());
        let desired = if changed {
            status::desired(snapshot, &self.agent_version, now, agent_part)
        } else if self.heartbeat_due_in().is_zero() {
            status::heartbeat(agent_part, now)
        } else {
            return Ok(None);
        };
        let Some(diff) = status::merge_diff(agent_part, &desired) else {
            return Ok(None);
        };
        self.patch_status(diff).await?;
        Ok(Some(if created {
            Reason::Create
        } else if changed {
            Reason::Change
        } else {
            Reason::Heartbeat
        }))
    }

    async fn read(&mut self) -> Result<(), ApiError> {
        let name = self.node_name.clone();
        let found = self
            .request("reading nodegpubaseline", self.baselines.get_opt(&name))
            .await?;
        self.server = match found {
            Some(ngb) => Server::Present {
                agent_part: agent_part_of(&ngb),
            },
            None => Server::Absent,
        };
        self.schedule_from_server();
        Ok(())
    }

    async fn create(&mut self) -> Result<(), ApiError> {
        let name = self.node_name.clone();
        let node = self
            .request("reading node", self.nodes.get_opt(&name))
            .await?
            .ok_or_else(|| ApiError::NodeNotFound { node: name.clone() })?;
        let uid = node
            .metadata
            .uid
            .clone()
            .ok_or_else(|| ApiError::NodeWithoutUid { node: name.clone() })?;
        let mut ngb = NodeGpuBaseline::new(
            &name,
            NodeGpuBaselineSpec {
                node_name: name.clone(),
            },
        );
        ngb.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".to_string(),
            kind: "Node".to_string(),
            name: name.clone(),
            uid,
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        let params = PostParams {
            dry_run: false,
            field_manager: Some(keys::AGENT_MANAGER.to_string()),
        };
        match self
            .request(
                "creating nodegpubaseline",
                self.baselines.create(&params, &ngb),
            )
            .await
        {
            Ok(created) => {
                self.server = Server::Present {
                    agent_part: agent_part_of(&created),
                };
                Ok(())
            }
            Err(e) => {
                if e.code() == Some(409) {
                    // Someone (an earlier run of this agent) created it in
                    // the meantime: read it next time round.
                    self.server = Server::Unknown;
                }
                Err(e)
            }
        }
    }

    async fn patch_status(&mut self, diff: Value) -> Result<(), ApiError> {
        let name = self.node_name.clone();
        let body = serde_json::json!({ "status": diff });
        let params = PatchParams {
            field_manager: Some(keys::AGENT_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(&body);
        match self
            .request(
                "writing nodegpubaseline status",
                self.baselines.patch_status(&name, &params, &patch),
            )
            .await
        {
            Ok(updated) => {
                self.server = Server::Present {
                    agent_part: agent_part_of(&updated),
                };
                self.next_heartbeat = Some(Instant::now() + self.heartbeat_interval);
                Ok(())
            }
            Err(e) => {
                match e.code() {
                    Some(404) => self.server = Server::Absent,
                    Some(409) => self.server = Server::Unknown,
                    _ => {}
                }
                Err(e)
            }
        }
    }

    async fn request<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.api_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ApiError::Kube {
                op,
                target: self.node_name.clone(),
                source,
            }),
            Err(_) => Err(ApiError::Timeout {
                op,
                target: self.node_name.clone(),
                timeout: self.api_timeout,
            }),
        }
    }
}

fn agent_part_of(ngb: &NodeGpuBaseline) -> Value {
    let status = ngb
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    status::strip_nulls(status::agent_part(status.as_ref()))
}
